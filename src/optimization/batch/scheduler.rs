//! The scheduler's handle: tickets, bounded submission, read-your-writes waits, flush and shutdown, and the
//! collection rule that decides when a batch is due.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

use crate::config::BatchSettings;
use crate::core::engine::Engine;
use crate::core::registry::{model_index, models};
use crate::optimization::cache::Cache;
use crate::utils::error::{Error, Result};

use super::controller::Controller;
use super::ops::{Progress, WriteOp, WriteOutcome};
use super::queue::Priority;
use super::queue::{Queue, Queued};
use super::writer::{self, lane_of};

/// A write's future: resolves to its committed outcome or a typed error. Dropping it does not cancel the
/// write.
#[derive(Debug)]
pub struct Ticket(Answer);

/// Where a ticket's answer comes from.
#[derive(Debug)]
enum Answer {
    /// The writer's answer channel.
    Channel(oneshot::Receiver<Result<WriteOutcome>>),
    /// A shared answer (a session keeps another handle on it, to know when its write is settled).
    Shared(SharedAnswer),
}

/// A ticket's answer that several holders can await and peek at.
pub(crate) type SharedAnswer = futures_util::future::Shared<BoxFuture<'static, Result<WriteOutcome>>>;

impl Ticket {
    /// A ticket already answered (a write that ran without the scheduler).
    pub fn ready(result: Result<WriteOutcome>) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        Ticket(Answer::Channel(rx))
    }

    /// Splits the ticket: one handle for the caller, one shared answer for a session to watch.
    pub(crate) fn shared(self) -> (Ticket, SharedAnswer) {
        let shared = match self.0 {
            Answer::Shared(s) => s,
            Answer::Channel(rx) => {
                let ticket = Ticket(Answer::Channel(rx));
                let fut: BoxFuture<'static, Result<WriteOutcome>> = Box::pin(ticket);
                fut.shared()
            }
        };
        (Ticket(Answer::Shared(shared.clone())), shared)
    }
}

impl Future for Ticket {
    type Output = Result<WriteOutcome>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Answer::Channel(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(Error::Indeterminate("the writer stopped before answering".into())))),
            Answer::Shared(s) => Pin::new(s).poll(cx),
        }
    }
}

/// A queued write with its answer channel and the queue capacity it holds.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) op: WriteOp,
    /// The write's stage, when a session watches it.
    pub(super) progress: Option<Arc<Progress>>,
    pub(super) tx: oneshot::Sender<Result<WriteOutcome>>,
    pub(super) _count: OwnedSemaphorePermit,
    pub(super) _bytes: OwnedSemaphorePermit,
}

/// Counters of the scheduler.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) batches: AtomicU64,
    pub(super) rows_committed: AtomicU64,
    pub(super) rows_rejected: AtomicU64,
    pub(super) rows_in_multi_row_batches: AtomicU64,
    pub(super) last_batch_rows: AtomicU64,
    pub(super) failed_batches: AtomicU64,
    /// Whether the last batch failed as a whole (the database refused the transaction).
    pub(super) last_batch_failed: AtomicBool,
    pub(super) flush_micros: AtomicU64,
    pub(super) linger_micros: AtomicU64,
    pub(super) isolated_writes: AtomicU64,
    pub(super) folded_writes: AtomicU64,
    pub(super) invalidate_micros: AtomicU64,
}

/// A snapshot of the scheduler's statistics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchStats {
    /// Batches committed.
    pub batches: u64,
    /// Writes committed.
    pub rows_committed: u64,
    /// Writes that failed (their own error, or their batch's).
    pub rows_rejected: u64,
    /// Writes committed in batches of two or more, over all committed.
    pub batched_write_ratio: Option<f64>,
    /// Mean writes per committed batch.
    pub mean_batch_rows: Option<f64>,
    /// Size of the last batch.
    pub last_batch_rows: u64,
    /// Writes queued now, per priority (critical, high, normal, low).
    pub queued: [usize; 4],
    /// The adaptive batch target now.
    pub target_batch_rows: usize,
    /// The adaptive linger now, in ms.
    pub linger_ms: f64,
    /// Mean time a batch took to execute and commit, in ms.
    pub mean_flush_ms: Option<f64>,
    /// Mean time the oldest write of a batch waited before it ran, in ms.
    pub mean_wait_ms: Option<f64>,
    /// Writes that ran alone because the grouped statement holding them failed (each such failure is a
    /// poisoned row, or a bug: grouped statements are the normal path).
    pub isolated_writes: u64,
    /// Updates and increments applied to a row their batch inserted, before it was written (one row write
    /// instead of several).
    pub folded_writes: u64,
    /// Mean time from COMMIT to the tickets' release (cache invalidation and window carrying), in ms.
    pub mean_invalidate_ms: Option<f64>,
}

pub(super) struct Shared {
    /// One queue per writer ("lane"); a model's writes always go to the same lane (see [`lane_of`]).
    pub(super) lanes: Vec<Queue<Job>>,
    pub(super) engine: Engine,
    pub(super) cache: Cache,
    pub(super) count: Arc<Semaphore>,
    pub(super) bytes: Arc<Semaphore>,
    pub(super) submit_timeout: Duration,
    pub(super) closed: AtomicBool,
    /// Per lane: a reader is waiting for its writes (cut the linger short).
    pub(super) urgent: Vec<AtomicBool>,
    pub(super) seq: AtomicU64,
    /// Unresolved submissions per model: sequence number → partition stripe (`None`: reach unknown until
    /// the write runs, e.g. an update by message_id).
    pub(super) pending: Vec<Mutex<BTreeMap<u64, Option<usize>>>>,
    /// Signalled after every batch.
    pub(super) done: Notify,
    pub(super) controller: Mutex<Controller>,
    pub(super) stats: Counters,
    pub(super) last_flush: Mutex<Option<std::time::Instant>>,
    /// The callers' runtime, where the lanes' acknowledgers run (on a thread of their own they were no
    /// faster, and the extra busy thread doubled the cached reads' p99 on a 2-core machine shared with the
    /// database: 75 vs 47–54 ms, PostgreSQL + Redis).
    pub(super) acks: tokio::runtime::Handle,
}

/// The scheduler of one database. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
    /// Each writer thread's "finished" signal.
    tasks: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued: usize = self.shared.lanes.iter().map(Queue::len).sum();
        f.debug_struct("BatchWriter").field("queued", &queued).finish_non_exhaustive()
    }
}

/// Waits until a batch is due and takes it: at once when the oldest write reached an idle writer; else (writes
/// that queued while the writer was busy until `busy_until`) the target reached, a reader waiting (urgent),
/// the queue closed, the `linger` cap, or a short `grace` after that flush (group commit: they already waited one flush, and the
/// grace lets the writers it just answered join them instead of forming the next half-batch). Returns empty
/// only when closed and drained.
pub(crate) async fn collect<T>(
    queue: &Queue<T>,
    (target, max): (usize, usize),
    (linger, grace): (Duration, Duration),
    busy_until: Instant,
    closed: &AtomicBool,
    urgent: &AtomicBool,
) -> Vec<Queued<T>> {
    loop {
        let notified = queue.notify.notified();
        let len = queue.len();
        let is_closed = closed.load(Ordering::Acquire);
        if len == 0 {
            if is_closed {
                return vec![];
            }
            notified.await;
            continue;
        }
        let oldest = queue.oldest().unwrap_or_else(Instant::now);
        // A write that reached an idle writer runs at once (batches grow only with concurrency: what queues
        // during a flush forms the next batch); writes that queued during a flush wait at most the grace.
        let due = if oldest <= busy_until { (busy_until + grace).min(oldest + linger) } else { oldest };
        let now = Instant::now();
        if len >= target || now >= due || is_closed || urgent.swap(false, Ordering::AcqRel) {
            let batch = queue.take(max, now);
            if !batch.is_empty() {
                return batch;
            }
            // A caller's claimed write is running: its end wakes this loop.
            notified.await;
            continue;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(due) => {}
        }
    }
}

impl BatchWriter {
    /// Starts the writer threads and waits until each has its connection.
    ///
    /// # Errors
    /// [`Error::Database`] when a writer thread, its runtime or (PostgreSQL/MySQL) its connection cannot
    /// start: `open()` fails rather than accepting writes nobody will run.
    pub(crate) async fn start(engine: Engine, cache: Cache, settings: &BatchSettings) -> Result<BatchWriter> {
        let writers = match (settings.writers, engine.backend()) {
            (0, sea_orm::DbBackend::Sqlite) => 1,
            (0, _) => 4,
            // SQLite has one writer connection: more tasks would only queue on it.
            (_, sea_orm::DbBackend::Sqlite) => 1,
            (n, _) => n,
        };
        let shared = Arc::new(Shared {
            lanes: (0..writers).map(|_| Queue::new(Duration::from_millis(settings.age_step_ms))).collect(),
            engine,
            cache,
            count: Arc::new(Semaphore::new(settings.max_queued.max(1))),
            bytes: Arc::new(Semaphore::new((settings.max_queued_bytes / 1024).max(1) as usize)),
            submit_timeout: Duration::from_millis(settings.submit_timeout_ms),
            closed: AtomicBool::new(false),
            urgent: (0..writers).map(|_| AtomicBool::new(false)).collect(),
            seq: AtomicU64::new(0),
            pending: models().iter().map(|_| Mutex::new(BTreeMap::new())).collect(),
            done: Notify::new(),
            controller: Mutex::new(Controller::new(
                settings.min_batch_rows,
                settings.max_batch_rows,
                Duration::from_micros((settings.min_linger_ms * 1000.0) as u64),
                Duration::from_micros((settings.max_linger_ms * 1000.0) as u64),
            )),
            stats: Counters::default(),
            last_flush: Mutex::new(None),
            acks: tokio::runtime::Handle::current(),
        });
        let mut tasks = Vec::with_capacity(writers);
        let mut started = Ok(());
        for i in 0..writers {
            match writer::spawn_writer(i, shared.clone()) {
                Ok((ready, finished)) => {
                    tasks.push(finished);
                    let up = ready.await.unwrap_or_else(|_| Err(Error::internal("a writer thread ended at start")));
                    started = started.and(up);
                }
                Err(e) => started = started.and(Err(e)),
            }
        }
        let writer = BatchWriter { shared, tasks: Arc::new(Mutex::new(tasks)) };
        if let Err(e) = started {
            // Stop the writers that did start, then report.
            writer.shutdown(Duration::from_secs(1)).await;
            return Err(e);
        }
        Ok(writer)
    }

    /// Queues a validated write and returns its ticket.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`] after shutdown began; [`Error::Overloaded`] when the queue stayed full for the
    /// submit timeout.
    pub(crate) async fn submit(
        &self,
        op: WriteOp,
        priority: Priority,
        progress: Option<Arc<Progress>>,
    ) -> Result<Ticket> {
        let s = &self.shared;
        let lane = lane_of(model_index(op.model()), s.lanes.len());
        let (job, rx) = self.job(op, priority, progress).await?;
        s.lanes[lane].push(job);
        Ok(Ticket(Answer::Channel(rx)))
    }

    /// Runs a write its caller awaits: at once on the caller's task when its lane is idle (nothing queued
    /// or committing that it could overtake; the hand-off to the writer thread and back cost about 100 µs
    /// of a lone write's acknowledgement), else queued to join a batch. Either way the answer comes after
    /// COMMIT and the cache work, and the write counts as a batch.
    ///
    /// # Errors
    /// As [`BatchWriter::submit`], and the write's own error.
    pub(crate) async fn write(&self, op: WriteOp, priority: Priority) -> Result<WriteOutcome> {
        let s = &self.shared;
        let lane = &s.lanes[lane_of(model_index(op.model()), s.lanes.len())];
        if s.closed.load(Ordering::Acquire) || !lane.try_claim() {
            return self.submit(op, priority, None).await?.await;
        }
        // Released on every path (a cancelled caller included), waking the writer for what queued meanwhile.
        struct Claim<'q>(&'q Queue<Job>);
        impl Drop for Claim<'_> {
            fn drop(&mut self) {
                self.0.finished();
            }
        }
        let claim = Claim(lane);
        let (job, rx) = self.job(op, priority, None).await?;
        let done = writer::run_batch(&s.engine, vec![job]).await;
        // Acknowledged before the lane is released: the cache replays commits in commit order.
        writer::acknowledge(s, done).await;
        drop(claim);
        Ticket(Answer::Channel(rx)).await
    }

    /// A write ready to queue: it holds its share of the queue's capacity and is registered as pending.
    async fn job(
        &self,
        op: WriteOp,
        priority: Priority,
        progress: Option<Arc<Progress>>,
    ) -> Result<(Queued<Job>, oneshot::Receiver<Result<WriteOutcome>>)> {
        let s = &self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown("no new writes are accepted".into()));
        }
        let kib = (op.bytes() / 1024 + 1).min(s.bytes.available_permits().max(1)) as u32;
        let started = std::time::Instant::now();
        let overloaded = || Error::Overloaded { waited_ms: started.elapsed().as_millis() as u64 };
        let count = tokio::time::timeout(s.submit_timeout, s.count.clone().acquire_owned())
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| Error::ShuttingDown("queue closed".into()))?;
        let bytes = tokio::time::timeout(s.submit_timeout, s.bytes.clone().acquire_many_owned(kib))
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| Error::ShuttingDown("queue closed".into()))?;
        let (tx, rx) = oneshot::channel();
        let seq = s.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let m = model_index(op.model());
        lock(&s.pending[m]).insert(seq, crate::optimization::partition::write_stripe(&op));
        metrics::gauge!(crate::utils::metrics::BATCH_QUEUE_DEPTH, "priority" => priority.label()).increment(1.0);
        let item = Job { op, tx, progress, _count: count, _bytes: bytes };
        Ok((Queued { item, priority, at: Instant::now(), seq }, rx))
    }

    /// Returns once every write submitted before this call that a read of model `model_idx` scoped to
    /// partition stripe `stripe` could see has resolved: writes to that partition (`None`: every write to the
    /// model). A write whose partition is only known when it runs (an update by message_id) is waited for by
    /// unscoped reads only; its own caller sees it once its ticket resolves.
    pub(crate) async fn wait_for(&self, model_idx: usize, stripe: Option<usize>) {
        let s = &self.shared;
        let snapshot = s.seq.load(Ordering::Acquire);
        loop {
            let notified = s.done.notified();
            let blocked = lock(&s.pending[model_idx])
                .range(..=snapshot)
                .any(|(_, sc)| stripe.is_none() || (sc.is_some() && *sc == stripe));
            if !blocked {
                return;
            }
            let lane = lane_of(model_idx, s.lanes.len());
            s.urgent[lane].store(true, Ordering::Release);
            s.lanes[lane].notify.notify_one();
            notified.await;
        }
    }

    /// Returns once every write submitted before this call has resolved.
    pub(crate) async fn flush(&self) {
        for m in 0..models().len() {
            self.wait_for(m, None).await;
        }
    }

    /// Stops intake, commits what is queued within `deadline`, then fails explicitly whatever is left.
    pub(crate) async fn shutdown(&self, deadline: Duration) {
        let s = &self.shared;
        s.closed.store(true, Ordering::Release);
        for q in &s.lanes {
            q.notify.notify_waiters();
        }
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        let all = futures_util::future::join_all(tasks);
        let mut all = std::pin::pin!(all);
        if tokio::time::timeout(deadline, &mut all).await.is_err() {
            tracing::warn!("batch writer did not drain within the shutdown deadline; failing the rest");
            fail_queued(s, "not committed before the shutdown deadline");
            // A batch still in flight keeps running detached; its tickets resolve when it ends (with an error
            // once the pools close: `Indeterminate` if COMMIT was cut off).
        }
        s.count.close();
        s.bytes.close();
        s.done.notify_waiters();
    }

    /// Whether the last batch failed as a whole (its transaction could not commit): writes are failing.
    pub(crate) fn failing(&self) -> bool {
        self.shared.stats.last_batch_failed.load(Ordering::Acquire)
    }

    /// The lane (writer) that takes `model`'s writes.
    pub(crate) fn lane(&self, model: &crate::core::registry::ModelDef) -> usize {
        lane_of(model_index(model), self.shared.lanes.len())
    }

    /// How long ago the last batch finished, if any did.
    pub(crate) fn last_flush_age(&self) -> Option<Duration> {
        lock(&self.shared.last_flush).map(|t| t.elapsed())
    }

    /// Statistics now.
    pub(crate) fn stats(&self) -> BatchStats {
        let c = &self.shared.stats;
        let committed = c.rows_committed.load(Ordering::Relaxed);
        let batches = c.batches.load(Ordering::Relaxed);
        let ctrl = lock(&self.shared.controller).clone();
        BatchStats {
            batches,
            rows_committed: committed,
            rows_rejected: c.rows_rejected.load(Ordering::Relaxed),
            batched_write_ratio: (committed > 0)
                .then(|| c.rows_in_multi_row_batches.load(Ordering::Relaxed) as f64 / committed as f64),
            mean_batch_rows: (batches > 0).then(|| committed as f64 / batches as f64),
            last_batch_rows: c.last_batch_rows.load(Ordering::Relaxed),
            queued: self.shared.lanes.iter().map(Queue::depths).fold([0; 4], |mut a, d| {
                for (x, y) in a.iter_mut().zip(d) {
                    *x += y;
                }
                a
            }),
            target_batch_rows: ctrl.target(),
            linger_ms: ctrl.linger().as_secs_f64() * 1e3,
            mean_flush_ms: (batches > 0).then(|| c.flush_micros.load(Ordering::Relaxed) as f64 / 1e3 / batches as f64),
            mean_wait_ms: (batches > 0).then(|| c.linger_micros.load(Ordering::Relaxed) as f64 / 1e3 / batches as f64),
            isolated_writes: c.isolated_writes.load(Ordering::Relaxed),
            folded_writes: c.folded_writes.load(Ordering::Relaxed),
            mean_invalidate_ms: (batches > 0)
                .then(|| c.invalidate_micros.load(Ordering::Relaxed) as f64 / 1e3 / batches as f64),
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Fails every queued write explicitly (nothing is dropped silently).
pub(super) fn fail_queued(s: &Shared, why: &str) {
    for q in s.lanes.iter().flat_map(Queue::drain) {
        lock(&s.pending[model_index(q.item.op.model())]).remove(&q.seq);
        let _ = q.item.tx.send(Err(Error::ShuttingDown(why.into())));
        s.stats.rows_rejected.fetch_add(1, Ordering::Relaxed);
    }
    s.done.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty queue, not closed, with a reader waiting or not.
    fn fresh(urgent: bool) -> (Queue<u32>, AtomicBool, AtomicBool) {
        (Queue::new(Duration::from_millis(100)), AtomicBool::new(false), AtomicBool::new(urgent))
    }

    fn push(q: &Queue<u32>, i: u32) {
        q.push(Queued { item: i, priority: Priority::Normal, at: Instant::now(), seq: u64::from(i) });
    }

    /// Collects from a writer that has been idle for a while (no grace applies).
    async fn collect_idle(
        q: &Queue<u32>,
        bounds: (usize, usize),
        linger: Duration,
        closed: &AtomicBool,
        urgent: &AtomicBool,
    ) -> Vec<Queued<u32>> {
        collect(q, bounds, (linger, Duration::ZERO), Instant::now() - Duration::from_secs(10), closed, urgent).await
    }

    #[tokio::test(start_paused = true)]
    async fn size_trigger_flushes_without_waiting() {
        let (q, closed, urgent) = fresh(false);
        for i in 0..8 {
            push(&q, i);
        }
        let t0 = Instant::now();
        let b = collect_idle(&q, (8, 100), Duration::from_secs(1), &closed, &urgent).await;
        assert_eq!(b.len(), 8);
        assert_eq!(t0.elapsed(), Duration::ZERO, "the target was reached: no linger");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_writer_runs_a_lone_write_at_once() {
        let (q, closed, urgent) = fresh(false);
        push(&q, 1);
        let t0 = Instant::now();
        let b = collect_idle(&q, (8, 100), Duration::from_millis(5), &closed, &urgent).await;
        assert_eq!(b.len(), 1);
        assert_eq!(t0.elapsed(), Duration::ZERO, "no linger when the writer was idle");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_reader_cuts_the_linger_short_and_close_drains() {
        let (q, closed, urgent) = fresh(true);
        push(&q, 1);
        let t0 = Instant::now();
        // The write queued while the writer was busy (it would wait for the grace): the reader cuts it short.
        let lingers = (Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(collect(&q, (8, 100), lingers, Instant::now(), &closed, &urgent).await.len(), 1);
        assert_eq!(t0.elapsed(), Duration::ZERO);
        closed.store(true, Ordering::Release);
        assert!(collect_idle(&q, (8, 100), Duration::from_secs(1), &closed, &urgent).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_queued_during_a_flush_wait_only_the_grace() {
        let (q, closed, urgent) = fresh(false);
        push(&q, 1);
        tokio::time::advance(Duration::from_millis(3)).await;
        let flush_ended = Instant::now();
        let t0 = Instant::now();
        let lingers = (Duration::from_secs(1), Duration::from_millis(2));
        assert_eq!(collect(&q, (8, 100), lingers, flush_ended, &closed, &urgent).await.len(), 1);
        assert_eq!(t0.elapsed(), Duration::from_millis(2), "the grace, not the whole linger");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_never_exceeds_the_maximum() {
        let (q, closed, urgent) = fresh(false);
        for i in 0..50 {
            push(&q, i);
        }
        assert_eq!(collect_idle(&q, (8, 20), Duration::from_secs(1), &closed, &urgent).await.len(), 20);
        assert_eq!(q.len(), 30);
    }
}
