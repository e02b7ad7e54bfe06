//! The fence: what keeps every process from serving a cached read that a write made stale when that write's
//! counters could not reach Redis (Redis slow, frozen or down).
//!
//! Processes learn of each other's writes only through the counters in Redis and their announcements. A
//! write whose bump fails moves this process's counters alone; the other processes (and every process started
//! later, reading the counters from Redis) would keep serving the entries it made stale. So before such a
//! write is acknowledged, it is counted in the database (`botdb_cache_fence.owed`), which every process can
//! reach, and its acknowledgement waits until [`FRESH_FOR`] after the first write of this process still owed:
//! - every process reads the fence row every [`CHECK_EVERY`] and serves cached reads (any tier) only while
//!   its last check that found nothing owed *began* less than [`FRESH_FOR`] ago; so a read that begins after
//!   the acknowledgement either saw the debt (and reads the database) or began after it was made good;
//! - a process that finds a debt and can reach Redis makes it good: it bumps every model's `all` counter in
//!   Redis (every entry keyed before is unreachable), announces them, and records those values as floors in
//!   the fence row; every process raises its counters to the floors before serving cached reads again.
//!
//! Nothing is owed while Redis answers, and the check is one indexed read of one row four times a second.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use crate::core::fence;
use crate::core::registry::models;

use super::generations::Field;
use super::tiers::Cache;

/// How long a check that found nothing owed lets cached reads be served.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(1);

/// How often a process reads the fence row.
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(250);

/// One process's view of the fence.
#[derive(Debug)]
pub(super) struct Fence {
    reader: DatabaseConnection,
    writer: DatabaseConnection,
    start: Instant,
    /// When the last check that found nothing owed began (ms since `start`, plus one; 0: none yet).
    clean_at: AtomicU64,
    /// Since when this process owes (ms since `start`, plus one; 0: it owes nothing).
    owing_since: AtomicU64,
    /// The fence's `owed` count after this process's last write owed (changed under this lock).
    owed_mine: Mutex<i64>,
    /// The row could not be read at the last check (warned once until it can again).
    unreadable: std::sync::atomic::AtomicBool,
}

impl Fence {
    /// A fence read and written through these connections; nothing is served from the cache until a check
    /// finds nothing owed.
    pub(super) fn new(reader: DatabaseConnection, writer: DatabaseConnection) -> Fence {
        Fence {
            reader,
            writer,
            start: Instant::now(),
            clean_at: AtomicU64::new(0),
            owing_since: AtomicU64::new(0),
            owed_mine: Mutex::new(0),
            unreadable: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// Whether cached reads may be served now.
    pub(super) fn clear(&self) -> bool {
        let clean = self.clean_at.load(Ordering::Acquire);
        clean != 0
            && self.owing_since.load(Ordering::Acquire) == 0
            && self.now().saturating_sub(clean) < FRESH_FOR.as_millis() as u64
    }
}

impl Cache {
    /// Whether cached reads may be served now (always, without Redis).
    pub(super) fn fence_clear(&self) -> bool {
        self.inner.fence.as_ref().is_none_or(Fence::clear)
    }

    /// Reads the fence row: raises the counters to its floors, makes a debt good when Redis answers, and
    /// lets cached reads be served when nothing is owed.
    pub(crate) async fn check_fence(&self) {
        let (Some(f), Some(r)) = (&self.inner.fence, &self.inner.redis) else { return };
        let began = f.now();
        let row = match fence::read(&f.reader).await {
            Ok(row) => {
                f.unreadable.store(false, Ordering::Release);
                row
            }
            Err(e) => {
                if !f.unreadable.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "cannot read the cache fence (are the migrations applied?); reads go to the database until it can");
                }
                return;
            }
        };
        for &(idx, v) in &row.floors {
            if idx < models().len() {
                let _ = self.inner.gens.raise(idx, Field::All, v);
            }
        }
        if row.owed > row.paid {
            f.clean_at.store(0, Ordering::Release);
            if !r.reachable() {
                return;
            }
            // Make it good: every model's `all` counter moves (and is announced), so every entry keyed before
            // is unreachable here, in Redis and in every process.
            let items: Vec<_> = models().iter().enumerate().map(|(i, m)| (m, i, vec![Field::All])).collect();
            let Some(values) = r.bump_many(&items).await else { return };
            let floors: Vec<(usize, u64)> = values.iter().enumerate().map(|(i, v)| (i, v[0])).collect();
            for &(idx, v) in &floors {
                let _ = self.inner.gens.raise(idx, Field::All, v);
            }
            match fence::pay(&f.writer, row.owed, &floors).await {
                Ok(true) => tracing::info!(owed = row.owed, "cache fence: writes that missed Redis made good"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record a cache fence payment"),
            }
            return;
        }
        f.clean_at.store(began, Ordering::Release);
        let mine = f.owed_mine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *mine <= row.paid {
            f.owing_since.store(0, Ordering::Release);
        }
    }

    /// Called before acknowledging a committed write whose counters did not reach Redis: counts it in the
    /// fence row and waits until every process has seen that something is owed (see the module docs).
    pub(crate) async fn owe(&self) {
        let Some(f) = &self.inner.fence else { return };
        let row = match fence::owe(&f.writer).await {
            Ok(row) => row,
            Err(e) => {
                // The write is committed; it cannot be taken back. Say so loudly: other processes may serve
                // its old rows from their caches until their entries expire.
                tracing::error!(error = %e, "a write could not reach Redis nor the cache fence; other processes may read stale rows");
                return;
            }
        };
        {
            let mut mine = f.owed_mine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Every debt of this process made good before this one: the readers that saw nothing owed may
            // have looked between that payment and this debt, so the wait starts again from now.
            if row.paid >= *mine || f.owing_since.load(Ordering::Acquire) == 0 {
                f.owing_since.store(f.now(), Ordering::Release);
            }
            *mine = (*mine).max(row.owed);
        }
        if row.paid >= row.owed {
            // Made good already, after this write committed.
            return;
        }
        let since = f.owing_since.load(Ordering::Acquire);
        let until = since.saturating_sub(1) + FRESH_FOR.as_millis() as u64;
        let now = f.now() - 1;
        if until > now {
            tokio::time::sleep(Duration::from_millis(until - now)).await;
        }
    }
}
