//! Layer 1, core: the engine and its transactions, the model registry, values and validation, the filter
//! language, statement execution and migrations. Knows nothing of caches or batches.

pub(crate) mod data;
pub(crate) mod engine;
pub mod exec;
#[cfg(feature = "redis")]
pub(crate) mod fence;
pub(crate) mod filter;
pub(crate) mod migrate;
pub(crate) mod registry;
pub(crate) mod value;
