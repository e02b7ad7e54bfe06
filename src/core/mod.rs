//! Layer 1, core: the engine and its transactions, the model registry, values and validation, the filter
//! language, statement execution and migrations. Knows nothing of caches or batches.

pub mod data;
pub mod engine;
pub mod exec;
pub mod filter;
pub mod migrate;
pub mod registry;
pub mod value;
