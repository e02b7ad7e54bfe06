//! Layer 2, optimization: the multi-level read cache with its invalidation bus, and the preloader. Uses
//! core; never names api.

pub mod cache;
pub mod preload;
