//! Layer 0: the error type, retry with backoff, time helpers, metric names, the stable hash and dedicated runtimes. Depends on nothing else in the crate.

pub(crate) mod error;
pub(crate) mod metrics;
pub(crate) mod retry;
#[cfg(feature = "redis")]
pub(crate) mod runtime;
pub(crate) mod stable_hash;
pub mod time;
