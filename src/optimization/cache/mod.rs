//! The multi-level read cache: L1 (small, short TTL) → L2 (large, byte-bounded) in process (moka, both LRU: see
//! [`Cache::new`]) →
//! the optional Redis tier shared by several processes → the database. Misses on one key coalesce into one
//! load; empty results are cached with a shorter TTL.
//!
//! Coherence comes from generations (`generations.rs`): a key embeds the counters it was read under, and a
//! committed write bumps the counters of what it touched before its caller hears `Ok`. A load that began
//! before the write installs its result under the old key, where no later read looks: a stale fill is
//! impossible by construction. With Redis, the counters are shared (hashes bumped with `HINCRBY`) and
//! announced on a pub/sub channel; a process that loses the channel drops its in-process entries.

/// How long statistics a process published to Redis count as a running process's (three publications).
const STATS_KEEP: std::time::Duration = std::time::Duration::from_secs(15);

#[cfg(feature = "redis")]
mod bus;
pub(crate) mod carry;
#[cfg(feature = "redis")]
mod fence;
pub(crate) mod generations;
mod points;
#[cfg(feature = "redis")]
mod redis;
#[cfg(not(feature = "redis"))]
#[path = "redis_off.rs"]
mod redis;
pub(crate) mod stats;
mod tiers;
pub(crate) mod window;

pub use crate::optimization::partition::{Reach, Touched};
pub(crate) use carry::WindowEdits;
pub use stats::{CacheStats, PartState};
pub use tiers::{Cache, Loader};
