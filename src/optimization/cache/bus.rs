//! The invalidation bus: one dedicated pub/sub connection (never pooled) per process. It applies the
//! counters other processes announce, resynchronises after every (re)subscription, and drops the
//! in-process entries whenever the channel was lost, since messages may have been missed.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use super::generations::Field;
use deadpool_redis::redis::aio::PubSub;

use super::redis::{RedisTier, decode_message};
use super::tiers::{Cache, Inner};
use crate::core::registry::models;
use crate::optimization::partition::STRIPES;

/// Every counter a model has.
fn all_fields() -> impl Iterator<Item = Field> {
    [Field::All, Field::Any].into_iter().chain((0..STRIPES).map(Field::Stripe))
}

/// How often a process publishes its statistics for `botdb-admin cache stats`.
const STATS_EVERY: Duration = Duration::from_secs(5);

/// This process's statistics as field `<host>-<pid>` of `<prefix>:stats`.
async fn publish_stats(cache: &Cache) {
    let Some(r) = &cache.inner.redis else { return };
    let id = format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()), std::process::id());
    let at_ms = (crate::utils::time::now_epoch() * 1000.0) as u64;
    let stats = serde_json::json!({ "process": id, "at_ms": at_ms, "stats": cache.stats() });
    r.publish_stats(&id, &stats.to_string(), super::STATS_KEEP).await;
}

/// Re-reads every shared counter (after bumping `all` everywhere when this process wrote while Redis was
/// unusable) and drops the in-process entries. Returns false when Redis did not answer.
async fn resync(cache: &Cache) -> bool {
    let inner = &cache.inner;
    let Some(r) = &inner.redis else { return true };
    let desyncs = r.desyncs.load(Ordering::Acquire);
    if r.desynced.load(Ordering::Acquire) {
        for (idx, m) in models().iter().enumerate() {
            if r.bump(m, idx, &[Field::All]).await.is_none() {
                return false;
            }
        }
    }
    let mut fresh = Vec::with_capacity(models().len());
    for m in models() {
        match r.fetch_gens(m).await {
            Some(g) => fresh.push(g),
            None => return false,
        }
    }
    for (idx, (m, g)) in models().iter().zip(fresh).enumerate() {
        // Counters never go back: a write acknowledged meanwhile raised one past the value just fetched
        // (setting it back let a later read find an entry stored before that write), and a number used
        // again would find entries stored under it before. Where this process is ahead of Redis (local bumps
        // Redis never saw), Redis is raised to it; then this process raises its counters to Redis's.
        let shared: HashMap<Field, u64> = g.into_iter().collect();
        let ahead: Vec<(Field, u64)> = all_fields()
            .filter_map(|f| {
                let (local, theirs) = (inner.gens.get(idx, f), shared.get(&f).copied().unwrap_or(0));
                (local > theirs).then(|| (f, local - theirs))
            })
            .collect();
        if !ahead.is_empty() {
            let Some(values) = r.advance(m, idx, &ahead).await else { return false };
            for ((f, _), v) in ahead.iter().zip(values) {
                let _ = inner.gens.raise(idx, *f, v);
            }
        }
        for (f, v) in shared {
            let _ = inner.gens.raise(idx, f, v);
        }
    }
    // Every in-process key moves to a new epoch, so no entry keyed before the resync (or by a load in
    // flight across it, while Redis was out of reach) can become reachable again.
    inner.epoch.fetch_add(1, Ordering::AcqRel);
    inner.l1.invalidate_all();
    inner.l2.invalidate_all();
    // A write that could not reach Redis meanwhile keeps the tier unusable until the next resync.
    if r.desyncs.load(Ordering::Acquire) == desyncs {
        r.desynced.store(false, Ordering::Release);
    }
    r.synced.store(true, Ordering::Release);
    true
}

fn apply(cache: &Cache, payload: &str) {
    match decode_message(payload) {
        Some(None) => {
            cache.inner.l1.invalidate_all();
            cache.inner.l2.invalidate_all();
        }
        Some(Some((idx, fields))) => {
            for (f, v) in fields {
                let _ = cache.inner.gens.raise(idx, f, v);
            }
        }
        None => tracing::warn!("ignoring a malformed invalidation message"),
    }
}

/// Why a subscribed session of the bus ended.
enum Ended {
    /// The cache was dropped: stop.
    CacheGone,
    /// The channel closed: messages may have been missed.
    ChannelLost,
}

/// The bus task: subscribes (with backoff), then listens until the cache is dropped or the task is aborted;
/// a lost channel drops the in-process entries (they may have missed invalidations) and subscribes again.
pub(super) async fn run(weak: Weak<Inner>, cooldown: Duration) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let cache = Cache { inner };
        let Some(r) = cache.inner.redis.clone() else { return };
        let subscribed = subscribe(&cache, &r).await;
        drop(cache);
        let Some(pubsub) = subscribed else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        };
        backoff = Duration::from_millis(100);
        tracing::info!("cache invalidation bus subscribed");
        if let Ended::CacheGone = listen(pubsub, &weak, cooldown).await {
            return;
        }
        if let Some(inner) = weak.upgrade() {
            tracing::warn!("cache invalidation bus lost; dropping in-process entries until resynchronised");
            if let Some(r) = &inner.redis {
                r.mark_desynced();
            }
            Cache { inner }.clear_local();
        }
    }
}

/// A dedicated pub/sub connection subscribed to the channel, with the counters resynchronised; `None` when
/// Redis cannot be reached now.
async fn subscribe(cache: &Cache, r: &RedisTier) -> Option<PubSub> {
    let connected = tokio::time::timeout(Duration::from_secs(2), r.client().get_async_pubsub()).await;
    let Ok(Ok(mut pubsub)) = connected else { return None };
    (pubsub.subscribe(r.channel()).await.is_ok() && resync(cache).await).then_some(pubsub)
}

/// Applies announced counters as they arrive; every tick, resynchronises after a failed bump and publishes
/// this process's statistics.
async fn listen(pubsub: PubSub, weak: &Weak<Inner>, cooldown: Duration) -> Ended {
    let mut messages = pubsub.into_on_message();
    let mut tick = tokio::time::interval(cooldown.max(Duration::from_millis(100)));
    let mut last_stats = std::time::Instant::now() - STATS_EVERY;
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(m) = msg else { return Ended::ChannelLost };
                let Some(inner) = weak.upgrade() else { return Ended::CacheGone };
                if let Ok(payload) = m.get_payload::<String>() {
                    apply(&Cache { inner }, &payload);
                }
            }
            _ = tick.tick() => {
                let Some(inner) = weak.upgrade() else { return Ended::CacheGone };
                let cache = Cache { inner };
                if cache.inner.redis.as_ref().is_some_and(|r| r.desynced.load(Ordering::Acquire)) {
                    resync(&cache).await;
                }
                if last_stats.elapsed() >= STATS_EVERY {
                    last_stats = std::time::Instant::now();
                    publish_stats(&cache).await;
                }
            }
        }
    }
}
