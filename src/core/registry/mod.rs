//! The model registry: the model names of the model mapping, their tables, columns, types, client-side
//! defaults, required fields and natural keys, and what botdb knows of each model beyond its columns (its
//! partition column, default write priority, index order, warm-up role: the annotations of
//! `docs/schema.md`). Field names reach SQL only after being resolved here, and no other file matches a
//! model by name.

mod models;

mod mapping;

pub use mapping::*;
pub(crate) use models::MODEL_COUNT;
