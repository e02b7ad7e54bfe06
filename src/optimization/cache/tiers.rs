//! The cache's tiers and its lookup: L1 and L2 (moka, both LRU) in process, the Redis tier, single-flight
//! loads, and coherence on commit (generation bumps; windows carried by `carry.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::config::CacheSettings;
use crate::core::exec::Select;
use crate::core::registry::{ModelDef, model_index, models};
use crate::core::value::{Row, Rows};
use crate::utils::error::Result;
use crate::utils::stable_hash::StableHasher;

use crate::optimization::partition::Touched;

use super::carry::WindowEdits;
use super::generations::{Field, Generations, fields_of, read_field};
use super::redis::RedisTier;
use super::stats::{CacheStats, Counters, Layer, PartState};
use super::window::WindowRead;

/// Loads a select from the database (the cache's only way to reach it).
pub type Loader<'a> = &'a (dyn Fn(Select) -> BoxFuture<'static, Result<Vec<Row>>> + Send + Sync);

/// Why a load left nothing in the cache.
enum NotKept {
    /// The load failed.
    Failed(crate::Error),
    /// Its rows (answered to every caller that joined the load) exceed `cache.max_entry_bytes`.
    TooBig(Rows),
}

/// A cached result.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) rows: Rows,
    pub(super) ttl: Duration,
    pub(super) bytes: u32,
}

/// The heap a cached row holds, estimated from its layout: the `Arc` and map header, the map's entries (hash,
/// key, value: 64 bytes each) and index table, each key's and text value's own allocation (rounded to the
/// allocator's 16-byte classes, plus its header), times 1.5 for allocator size classes and fragmentation
/// (calibrated against RSS growth per 10,000 cached `Messages` rows: about 7 KB each).
pub(super) fn row_bytes(row: &Row) -> usize {
    let alloc = |len: usize| len.div_ceil(16) * 16 + 16;
    let n = row.len();
    let table = 9 * (n * 8 / 7 + 1).next_power_of_two();
    let cells: usize = row.iter().map(|(k, v)| 64 + alloc(k.len()) + v.as_str().map_or(0, |s| alloc(s.len()))).sum();
    (96 + table + cells) * 3 / 2
}

/// What an entry holds besides its rows: moka's node, the key and the `Arc<[Arc<Row>]>`.
const ENTRY_OVERHEAD: usize = 256;

impl Entry {
    pub(super) fn new(rows: Rows, ttl: Duration, negative: Duration) -> Entry {
        let bytes: usize = rows.iter().map(|r| row_bytes(r) + 16).sum::<usize>() + ENTRY_OVERHEAD;
        Entry::sized(rows, ttl, negative, bytes)
    }

    /// An entry whose rows are estimated at `per_row` bytes each (a carried window: its rows are about the
    /// size of those it replaces, and estimating 64 rows field by field at every commit was a large part of
    /// the post-commit work).
    pub(super) fn scaled(rows: Rows, ttl: Duration, negative: Duration, per_row: usize) -> Entry {
        let bytes = rows.len() * per_row + ENTRY_OVERHEAD;
        Entry::sized(rows, ttl, negative, bytes)
    }

    fn sized(rows: Rows, ttl: Duration, negative: Duration, bytes: usize) -> Entry {
        let ttl = if rows.is_empty() { negative.min(ttl) } else { ttl };
        Entry { rows, ttl, bytes: bytes.min(u32::MAX as usize) as u32 }
    }

    /// The estimated bytes per row of this entry (for a carried copy of it).
    pub(super) fn bytes_per_row(&self) -> Option<usize> {
        (!self.rows.is_empty()).then(|| (self.bytes as usize).saturating_sub(ENTRY_OVERHEAD) / self.rows.len())
    }
}

struct TtlExpiry {
    cap: Duration,
}

impl moka::Expiry<u128, Entry> for TtlExpiry {
    fn expire_after_create(&self, _k: &u128, v: &Entry, _at: Instant) -> Option<Duration> {
        Some(v.ttl.min(self.cap))
    }
}

/// Where a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    L1,
    L2,
    Redis,
    Database,
    Coalesced,
}

/// The read cache of one handle. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Cache {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) l1: moka::future::Cache<u128, Entry>,
    pub(super) l2: moka::future::Cache<u128, Entry>,
    pub(super) gens: Generations,
    pub(super) stats: Arc<Counters>,
    pub(super) redis: Option<Arc<RedisTier>>,
    /// Per model: cached at all, and its TTL.
    pub(super) policy: Vec<(bool, Duration)>,
    pub(super) negative: Duration,
    pub(super) window_rows: u64,
    /// The largest entry (estimated bytes) a load keeps (`cache.max_entry_bytes`).
    pub(super) max_entry: u32,
    /// Per model, a bit per column that orders a recent-history window read so far (what commits carry).
    pub(super) window_orders: Vec<std::sync::atomic::AtomicU64>,
    /// Background tasks (the invalidation bus, the fence checks), stopped by [`Cache::shutdown`].
    pub(super) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// With Redis: the fence that keeps writes which missed Redis from being read stale (`fence.rs`).
    #[cfg(feature = "redis")]
    pub(super) fence: Option<super::fence::Fence>,
    /// Bumped by every resynchronisation with Redis, before its counters are taken (see `key_of`).
    pub(super) epoch: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("redis", &self.inner.redis.is_some()).finish_non_exhaustive()
    }
}

/// The key of `sel` read under generations `all` and `scope` (shared through Redis: a stable hash).
fn hash128(sel: &Select, all: u64, scope: (Field, u64)) -> u128 {
    let mut h = StableHasher::new();
    h.add(sel).u64(all).u64(scope.0.index() as u64).u64(scope.1);
    h.finish128()
}

/// Where a select lives now: its key under the current generations, and those generations.
pub(super) struct CacheKey {
    /// The in-process key: the shared key mixed with this process's resync epoch.
    pub(super) key: u128,
    /// The key shared through Redis (generations only: every process computes the same).
    pub(super) shared: u128,
    pub(super) model: usize,
    pub(super) all: u64,
    pub(super) scope: (Field, u64),
}

fn to_rows(rows: Vec<Row>) -> Rows {
    rows.into_iter().map(Arc::new).collect()
}

impl Cache {
    /// Builds the cache (and, with a Redis URL, the Redis tier and its invalidation bus task).
    ///
    /// # Errors
    /// [`crate::Error::Config`] for a malformed Redis URL or an unknown model in `cache.models`.
    ///
    /// Both tiers evict least-recently-used entries and admit every new one. TinyLFU (moka's default)
    /// rejects a new key whose estimated frequency is below its victim's, and here every committed write
    /// moves the reads it affects to new keys (new generations): under TinyLFU a full cache kept its old,
    /// unreachable entries and refused the live ones (measured: hit ratio 0.59 under the load harness).
    /// Superseded keys are never read again, so LRU evicts exactly them first.
    pub fn new(settings: &CacheSettings, engine: &crate::core::engine::Engine) -> Result<Cache> {
        let counters = Arc::new(Counters::default());
        let listener = |c: Arc<Counters>| {
            move |_k: Arc<u128>, _v: Entry, cause: moka::notification::RemovalCause| {
                if cause.was_evicted() {
                    c.evicted(cause == moka::notification::RemovalCause::Size);
                }
            }
        };
        let l1 = moka::future::Cache::builder()
            .max_capacity(settings.l1_max_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_k: &u128, v: &Entry| v.bytes)
            .expire_after(TtlExpiry { cap: Duration::from_millis(settings.l1_ttl_ms) })
            .eviction_listener(listener(counters.clone()))
            .build();
        let l2 = moka::future::Cache::builder()
            .max_capacity(settings.l2_max_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_k: &u128, v: &Entry| v.bytes)
            .expire_after(TtlExpiry { cap: Duration::from_millis(settings.l2_ttl_ms) })
            .eviction_listener(listener(counters.clone()))
            .build();
        for name in settings.models.keys() {
            crate::core::registry::model(name).map_err(|e| crate::Error::Config(format!("cache.models: {e}")))?;
        }
        let policy = models()
            .iter()
            .map(|m| {
                let p = settings.models.get(m.name).cloned().unwrap_or_default();
                let on = settings.enabled && p.enabled.unwrap_or(true);
                (on, Duration::from_millis(p.ttl_ms.unwrap_or(settings.l2_ttl_ms)))
            })
            .collect();
        let redis = match &settings.redis.url {
            Some(url) => Some(Arc::new(RedisTier::new(&settings.redis, url.expose())?)),
            None => None,
        };
        let cache = Cache {
            inner: Arc::new(Inner {
                l1,
                l2,
                gens: Generations::default(),
                stats: counters,
                redis,
                policy,
                negative: Duration::from_millis(settings.negative_ttl_ms),
                window_rows: settings.window_rows,
                max_entry: if settings.max_entry_bytes == 0 {
                    u32::MAX
                } else {
                    settings.max_entry_bytes.min(u32::MAX.into()) as u32
                },
                window_orders: models().iter().map(|_| std::sync::atomic::AtomicU64::new(0)).collect(),
                tasks: Mutex::new(Vec::new()),
                #[cfg(feature = "redis")]
                fence: settings
                    .redis
                    .url
                    .is_some()
                    .then(|| super::fence::Fence::new(engine.reader().clone(), engine.writer().clone())),
                epoch: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        #[cfg(feature = "redis")]
        if cache.inner.redis.is_some() {
            let weak = Arc::downgrade(&cache.inner);
            let bus =
                tokio::spawn(super::bus::run(weak.clone(), Duration::from_millis(settings.redis.breaker_cooldown_ms)));
            let fence = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(super::fence::CHECK_EVERY).await;
                    let Some(inner) = weak.upgrade() else { return };
                    Cache { inner }.check_fence().await;
                }
            });
            cache.inner.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend([bus, fence]);
        }
        #[cfg(not(feature = "redis"))]
        let _ = engine;
        Ok(cache)
    }

    /// The key of `sel` under the generations current now (read before any load, so a write that commits
    /// during the load moves later reads to a new key).
    pub(super) fn key_of(&self, sel: &Select) -> CacheKey {
        let model = model_index(sel.model);
        let scope = read_field(sel);
        let all = self.inner.gens.get(model, Field::All);
        let scope = (scope, self.inner.gens.get(model, scope));
        let shared = hash128(sel, all, scope);
        // A resync may set counters back to Redis's values; the epoch keeps every key computed before it
        // (by a load still in flight) apart from every key computed after it.
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let key = shared ^ u128::from(epoch).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        CacheKey { key, shared, model, all, scope }
    }

    /// Whether reads of `model` are cached.
    pub fn caches(&self, model: &ModelDef) -> bool {
        self.inner.policy[model_index(model)].0
    }

    /// The entry under `key` in L1 or L2, without counting a request.
    pub(super) async fn cached(&self, key: u128) -> Option<Entry> {
        match self.inner.l1.get(&key).await {
            Some(e) => Some(e),
            None => self.inner.l2.get(&key).await,
        }
    }

    /// Answers `sel` from the cache, loading it with `load` on a miss.
    ///
    /// # Errors
    /// Only the loader's errors: the cache itself never fails a read.
    pub async fn read(&self, sel: &Select, load: Loader<'_>) -> Result<Rows> {
        self.read_traced(sel, load).await.map(|(rows, _)| rows)
    }

    /// [`Cache::read`], also telling whether this call went to the database (a load it ran, or waited for).
    ///
    /// # Errors
    /// Only the loader's errors.
    pub async fn read_traced(&self, sel: &Select, load: Loader<'_>) -> Result<(Rows, bool)> {
        if !self.caches(sel.model) || !self.fence_clear() {
            return load(sel.clone()).await.map(|rows| (to_rows(rows), true));
        }
        let inner = &self.inner;
        inner.stats.request();
        let loaded = |s: Source| matches!(s, Source::Database | Source::Coalesced);
        let mut window_loaded = false;
        if let Some(w) = WindowRead::of(sel, inner.window_rows) {
            self.note_window(model_index(sel.model), w.column());
            let (rows, source) = self.lookup(&w.window, load).await?;
            if let Some(answer) = w.answer(&rows, inner.window_rows) {
                self.record(if loaded(source) { source } else { Source::L1 }, true);
                return Ok((answer, loaded(source)));
            }
            self.record(source, false);
            window_loaded = loaded(source);
        }
        let (rows, source) = self.lookup(sel, load).await?;
        self.record(source, false);
        Ok((rows, window_loaded || loaded(source)))
    }

    fn record(&self, source: Source, window: bool) {
        let s = &self.inner.stats;
        match source {
            Source::L1 if window => s.hit(Layer::Window),
            Source::L1 => s.hit(Layer::L1),
            Source::L2 => s.hit(Layer::L2),
            Source::Redis => s.hit(Layer::Redis),
            Source::Coalesced => s.coalesced(),
            Source::Database => {}
        }
    }

    async fn lookup(&self, sel: &Select, load: Loader<'_>) -> Result<(Rows, Source)> {
        let inner = &self.inner;
        let CacheKey { key, shared, model: midx, all, scope: scope_gen } = self.key_of(sel);
        if let Some(e) = inner.l1.get(&key).await {
            return Ok((e.rows, Source::L1));
        }
        if let Some(e) = inner.l2.get(&key).await {
            inner.l1.insert(key, e.clone()).await;
            return Ok((e.rows, Source::L2));
        }
        let ttl = inner.policy[midx].1;
        let ran = AtomicBool::new(false);
        let from_redis = AtomicBool::new(false);
        let got = inner
            .l2
            .try_get_with(key, async {
                ran.store(true, Ordering::Relaxed);
                let redis = inner.redis.as_ref().filter(|r| r.usable());
                let rkey = redis.map(|r| r.key(sel.model, all, scope_gen, shared));
                if let (Some(r), Some(rk)) = (redis, &rkey) {
                    match r.get(rk).await {
                        Some(Ok(rows)) if rows.iter().all(|row| row.len() == sel.model.columns.len()) => {
                            from_redis.store(true, Ordering::Relaxed);
                            return Ok(Entry::new(to_rows(rows), ttl, inner.negative));
                        }
                        Some(_) => inner.stats.redis_garbage(),
                        None => {}
                    }
                }
                inner.stats.load();
                let loaded = load(sel.clone()).await.map_err(NotKept::Failed)?;
                let entry = Entry::new(to_rows(loaded), ttl, inner.negative);
                if entry.bytes > inner.max_entry {
                    // Answered, not kept: it would evict more than it is worth (and with it, every
                    // caller that joined this load gets the rows).
                    inner.stats.too_big();
                    return Err(NotKept::TooBig(entry.rows));
                }
                if let (Some(r), Some(rk)) = (redis, &rkey) {
                    r.set(rk, &entry.rows, entry.ttl).await;
                }
                Ok::<_, NotKept>(entry)
            })
            .await;
        let source = match (ran.load(Ordering::Relaxed), from_redis.load(Ordering::Relaxed)) {
            (false, _) => Source::Coalesced,
            (true, true) => Source::Redis,
            (true, false) => Source::Database,
        };
        let entry = match got {
            Ok(entry) => entry,
            Err(e) => match &*e {
                NotKept::Failed(e) => return Err(e.clone()),
                NotKept::TooBig(rows) => return Ok((rows.clone(), source)),
            },
        };
        inner.l1.insert(key, entry.clone()).await;
        Ok((entry.rows, source))
    }

    /// Reloads `sel` from the database and installs it, whether or not it is cached (refresh ahead of expiry:
    /// the entry's TTL starts again). Installed under the generations read before the load, so a write that
    /// commits meanwhile still wins.
    ///
    /// # Errors
    /// The loader's errors.
    pub async fn refresh(&self, sel: &Select, load: Loader<'_>) -> Result<()> {
        if !self.caches(sel.model) {
            return Ok(());
        }
        let inner = &self.inner;
        let CacheKey { key, model: midx, .. } = self.key_of(sel);
        inner.stats.load();
        let entry = Entry::new(to_rows(load(sel.clone()).await?), inner.policy[midx].1, inner.negative);
        inner.l2.insert(key, entry.clone()).await;
        inner.l1.insert(key, entry).await;
        Ok(())
    }

    /// Answers many point reads of one model, `column = value` with limit 1 (one per value), with one query
    /// per 500 values: the warm-up's way to cache a chat's people without a query each. Each read's key is
    /// taken before its query runs (a write that commits meanwhile moves reads to a new key, so nothing
    /// stale becomes reachable); unless `refresh`, values already cached are skipped; a value without a row
    /// is cached empty. Returns how many entries were installed.
    ///
    /// # Errors
    /// The loader's errors; [`crate::Error::InvalidRequest`] for a column the model does not have.
    pub async fn fill_points(
        &self,
        model: &'static ModelDef,
        column: &str,
        values: &[serde_json::Value],
        load: Loader<'_>,
        refresh: bool,
    ) -> Result<usize> {
        if !self.caches(model) || !self.fence_clear() {
            return Ok(0);
        }
        let ttl = self.inner.policy[model_index(model)].1;
        let mut installed = 0;
        for chunk in values.chunks(500) {
            let mut wanted = Vec::with_capacity(chunk.len());
            for v in chunk {
                let key = self.key_of(&Select::parse(model, &serde_json::json!({ column: v }), &[], Some(1))?).key;
                if refresh || self.cached(key).await.is_none() {
                    wanted.push((v, key));
                }
            }
            if wanted.is_empty() {
                continue;
            }
            let any: Vec<&serde_json::Value> = wanted.iter().map(|(v, _)| *v).collect();
            let all = Select::parse(model, &serde_json::json!({ column: { "$in": any } }), &[], None)?;
            self.inner.stats.load();
            // Ordered by id: the first row of a value is what its own `LIMIT 1` read returns.
            let rows = load(all).await?;
            for (v, key) in wanted {
                let first: Vec<Row> = rows.iter().find(|r| r.get(column) == Some(v)).cloned().into_iter().collect();
                self.inner.l2.insert(key, Entry::new(to_rows(first), ttl, self.inner.negative)).await;
                installed += 1;
            }
        }
        Ok(installed)
    }

    /// Makes every entry a committed write may have changed unreachable, here and (with Redis) in every
    /// process, and carries the recent-history windows `edits` can replay to the new generations (see
    /// `carry.rs`). Call after COMMIT returns and before acknowledging; when it returns false (the counters
    /// did not reach Redis), call [`Cache::owe`] before acknowledging too.
    async fn committed(&self, touched: &[Touched], edits: Option<&WindowEdits>) -> bool {
        let (carried, points) = match edits {
            Some(e) => (self.take_windows(touched, e).await, self.take_points(touched, e).await),
            None => (Vec::new(), Vec::new()),
        };
        let shared = self.bump(touched).await;
        self.install_windows(carried).await;
        self.install_points(points).await;
        shared
    }

    /// [`Cache::committed`], then, if the counters did not reach Redis, [`Cache::owe`]: what every committed
    /// write passes before its caller hears `Ok`.
    pub async fn publish(&self, touched: &[Touched], edits: Option<&WindowEdits>) {
        if !self.committed(touched, edits).await {
            self.owe().await;
        }
    }

    /// Moves the counters of everything `touched` names: with Redis, all of a batch's and their
    /// announcements in one round trip. Returns false when they did not reach Redis.
    async fn bump(&self, touched: &[Touched]) -> bool {
        let inner = &self.inner;
        let items: Vec<(&ModelDef, usize, Vec<Field>)> =
            touched.iter().map(|t| (t.model, model_index(t.model), fields_of(t))).collect();
        if let Some(r) = &inner.redis {
            let before: Vec<Vec<u64>> = items
                .iter()
                .map(|(_, idx, fields)| fields.iter().map(|f| inner.gens.get(*idx, *f)).collect())
                .collect();
            let answered = if r.reachable() { r.bump_many(&items).await } else { None };
            let Some(all) = answered else {
                // Other processes cannot learn of these writes: stop using Redis until a resync (and the
                // caller owes them to the fence).
                r.mark_desynced();
                self.bump_locally(&items);
                return false;
            };
            for (((_, idx, fields), values), before) in items.iter().zip(all).zip(before) {
                for ((f, v), b) in fields.iter().zip(values).zip(before) {
                    // Every commit must move this process's counters past where they stood: if Redis
                    // answered a value this process was already at (Redis is behind: a local bump it never
                    // saw), move locally and resynchronise.
                    let _ = inner.gens.raise(*idx, *f, v);
                    if inner.gens.get(*idx, *f) <= b {
                        inner.gens.bump(*idx, *f);
                        r.mark_desynced();
                    }
                }
            }
            return true;
        }
        self.bump_locally(&items);
        true
    }

    fn bump_locally(&self, items: &[(&ModelDef, usize, Vec<Field>)]) {
        for (_, idx, fields) in items {
            for f in fields {
                self.inner.gens.bump(*idx, *f);
            }
        }
    }

    /// Drops every in-process entry.
    pub fn clear_local(&self) {
        self.inner.l1.invalidate_all();
        self.inner.l2.invalidate_all();
    }

    /// Drops every entry here and, with Redis, in every process sharing it. Returns how many other running
    /// processes received the flush, `None` without Redis or when Redis did not take it (the processes'
    /// entries may then survive).
    pub async fn flush(&self) -> Option<u64> {
        self.clear_local();
        let r = self.inner.redis.as_ref()?;
        let mut told = true;
        for (idx, m) in models().iter().enumerate() {
            match r.bump(m, idx, &[Field::All]).await {
                Some(v) => drop(self.inner.gens.raise(idx, Field::All, v[0])),
                None => told = false,
            }
        }
        let reached = r.publish_flush().await?;
        told.then_some(reached)
    }

    /// Statistics since the handle opened.
    pub fn stats(&self) -> CacheStats {
        let i = &self.inner;
        let (redis, errors) = match &i.redis {
            None => (PartState::Absent, 0),
            Some(r) => (r.state(), r.error_count()),
        };
        i.stats.snapshot((i.l1.entry_count(), i.l2.entry_count(), i.l2.weighted_size()), (redis, errors))
    }

    /// Runs moka's pending maintenance (expiry, eviction) now: for tests and statistics.
    pub async fn run_pending_tasks(&self) {
        self.inner.l1.run_pending_tasks().await;
        self.inner.l2.run_pending_tasks().await;
    }

    /// Stops the background tasks (invalidation bus, fence checks).
    pub fn shutdown(&self) {
        for h in self.inner.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            h.abort();
        }
    }

    /// The statistics running processes published to Redis (empty without Redis).
    pub async fn published_stats(&self) -> Vec<serde_json::Value> {
        match &self.inner.redis {
            Some(r) => r.fetch_stats(super::STATS_KEEP).await.unwrap_or_default(),
            None => vec![],
        }
    }

    /// The Redis tier's state: absent, up or degraded.
    pub fn redis_state(&self) -> PartState {
        self.inner.redis.as_ref().map_or(PartState::Absent, |r| r.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::model;

    /// Entry keys are shared through Redis by processes of different builds: the key of a known read under
    /// known generations is pinned.
    #[test]
    fn entry_keys_are_stable() {
        let m = model("Messages").unwrap();
        let filter = serde_json::json!({"chat_id": "chat-1", "time": {"$lt": 1.8e9}});
        let sel = Select::parse(m, &filter, &["-time".into()], Some(8)).unwrap();
        assert_eq!(hash128(&sel, 3, (Field::Stripe(744), 9)), 0x2d11_7650_d303_6d92_4948_df25_6a49_2cbd);
        assert_ne!(hash128(&sel, 4, (Field::Stripe(744), 9)), hash128(&sel, 3, (Field::Stripe(744), 9)));
    }
}

/// Without Redis there is no fence: cached reads are always served.
#[cfg(not(feature = "redis"))]
impl Cache {
    pub(super) fn fence_clear(&self) -> bool {
        true
    }

    /// Nothing to check without Redis.
    pub(crate) async fn check_fence(&self) {}

    /// Nothing is owed without Redis.
    pub(crate) async fn owe(&self) {}
}
