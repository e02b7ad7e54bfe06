//! Cache statistics: counted here (moka keeps none) and mirrored to `metrics` counters under `botdb_cache_*`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Where a read was answered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layer {
    /// The small in-process tier.
    L1,
    /// The large in-process tier.
    L2,
    /// The shared Redis tier.
    Redis,
    /// A recent-history window (itself in L1/L2).
    Window,
}

impl Layer {
    fn label(self) -> &'static str {
        match self {
            Layer::L1 => "l1",
            Layer::L2 => "l2",
            Layer::Redis => "redis",
            Layer::Window => "window",
        }
    }
}

/// Counters, updated lock-free.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    redis_hits: AtomicU64,
    window_hits: AtomicU64,
    loads: AtomicU64,
    coalesced: AtomicU64,
    redis_garbage: AtomicU64,
    evicted_expired: AtomicU64,
    evicted_size: AtomicU64,
    too_big: AtomicU64,
    carried: AtomicU64,
}

impl Counters {
    pub(super) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_REQUESTS_TOTAL).increment(1);
    }

    pub(super) fn hit(&self, layer: Layer) {
        let c = match layer {
            Layer::L1 => &self.l1_hits,
            Layer::L2 => &self.l2_hits,
            Layer::Redis => &self.redis_hits,
            Layer::Window => &self.window_hits,
        };
        c.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_HITS_TOTAL, "layer" => layer.label()).increment(1);
    }

    pub(super) fn load(&self) {
        self.loads.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_LOADS_TOTAL).increment(1);
    }

    pub(super) fn coalesced(&self) {
        self.coalesced.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_COALESCED_TOTAL).increment(1);
    }

    pub(super) fn redis_garbage(&self) {
        self.redis_garbage.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_REDIS_GARBAGE_TOTAL).increment(1);
    }

    pub(super) fn too_big(&self) {
        self.too_big.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_TOO_BIG_TOTAL).increment(1);
    }

    pub(super) fn carried(&self) {
        self.carried.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_WINDOWS_CARRIED_TOTAL).increment(1);
    }

    pub(super) fn evicted(&self, size: bool) {
        let (c, cause) = if size { (&self.evicted_size, "size") } else { (&self.evicted_expired, "expired") };
        c.fetch_add(1, Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_EVICTIONS_TOTAL, "cause" => cause).increment(1);
    }

    pub(super) fn snapshot(
        &self,
        (l1_entries, l2_entries, l2_bytes): (u64, u64, u64),
        (redis, redis_errors): (PartState, u64),
    ) -> CacheStats {
        let requests = self.requests.load(Relaxed);
        let hits = self.l1_hits.load(Relaxed)
            + self.l2_hits.load(Relaxed)
            + self.redis_hits.load(Relaxed)
            + self.window_hits.load(Relaxed);
        metrics::gauge!(crate::utils::metrics::CACHE_ENTRIES, "layer" => "l1").set(l1_entries as f64);
        metrics::gauge!(crate::utils::metrics::CACHE_ENTRIES, "layer" => "l2").set(l2_entries as f64);
        CacheStats {
            requests,
            l1_hits: self.l1_hits.load(Relaxed),
            l2_hits: self.l2_hits.load(Relaxed),
            redis_hits: self.redis_hits.load(Relaxed),
            window_hits: self.window_hits.load(Relaxed),
            database_loads: self.loads.load(Relaxed),
            coalesced_loads: self.coalesced.load(Relaxed),
            redis_errors,
            redis_garbage: self.redis_garbage.load(Relaxed),
            evicted_expired: self.evicted_expired.load(Relaxed),
            evicted_size: self.evicted_size.load(Relaxed),
            too_big: self.too_big.load(Relaxed),
            windows_carried: self.carried.load(Relaxed),
            l1_entries,
            l2_entries,
            l2_bytes,
            hit_ratio: if requests == 0 { None } else { Some(hits as f64 / requests as f64) },
            redis,
        }
    }
}

/// The state of one part of the system (the database, the Redis tier), as health checks report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartState {
    /// Working.
    Up,
    /// Reachable but not used for now (Redis: breaker open, or counters not yet synchronised).
    Degraded,
    /// Not answering.
    Down,
    /// Not configured.
    Absent,
}

impl PartState {
    /// The lowercase name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Up => "up",
            PartState::Degraded => "degraded",
            PartState::Down => "down",
            PartState::Absent => "absent",
        }
    }
}

impl std::fmt::Display for PartState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the cache's statistics since the handle opened.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheStats {
    /// Cached reads asked for.
    pub requests: u64,
    /// Answered by L1.
    pub l1_hits: u64,
    /// Answered by L2.
    pub l2_hits: u64,
    /// Answered by Redis.
    pub redis_hits: u64,
    /// Recent-history reads answered from a partition window.
    pub window_hits: u64,
    /// Loads that went to the database.
    pub database_loads: u64,
    /// Misses that waited for another caller's load of the same key instead of querying.
    pub coalesced_loads: u64,
    /// Redis calls that failed or timed out (each a miss, never an error).
    pub redis_errors: u64,
    /// Redis values that did not decode (each a miss).
    pub redis_garbage: u64,
    /// Entries evicted because their TTL passed.
    pub evicted_expired: u64,
    /// Entries evicted by the size/memory bound.
    pub evicted_size: u64,
    /// Loaded results larger than `cache.max_entry_bytes`: answered and not kept (a scan's pages).
    pub too_big: u64,
    /// Recent-history windows carried across a commit (edited in place instead of reloaded).
    pub windows_carried: u64,
    /// Entries in L1.
    pub l1_entries: u64,
    /// Entries in L2.
    pub l2_entries: u64,
    /// Estimated bytes in L2 (the memory bound's measure).
    pub l2_bytes: u64,
    /// Hits of any layer / requests.
    pub hit_ratio: Option<f64>,
    /// The Redis tier: `absent`, `up` or `degraded` (breaker open or desynchronised).
    pub redis: PartState,
}
