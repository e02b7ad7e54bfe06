//! Layer 2, optimization: the multi-level read cache with its invalidation bus, the batch-write scheduler,
//! the preloader, and the partitions both cache and batch key by. Uses core; never names api.

pub(crate) mod batch;
pub(crate) mod cache;
pub(crate) mod partition;
pub(crate) mod preload;
pub(crate) mod session;
pub(crate) mod store;
