//! Layer 2, optimization: the multi-level read cache with its invalidation bus, the batch-write scheduler,
//! and the preloader. Uses
//! core; never names api.

pub mod batch;
pub mod cache;
pub mod preload;
