//! # botdb
//!
//! The database persistence and optimization layer of the MoFox chat bot: its 25 models on SQLite (the
//! embedded default), PostgreSQL or MySQL, behind a typed API, a name-based API with a JSON filter language,
//! and the compatibility facade (`db_query`, `db_save`, `db_get`, `store_action_info`, `MODEL_MAPPING`) the
//! bot's plugins expect.
//!
//! ## Layout
//!
//! The layers depend in one direction only: **`utils ← core ← optimization ← api`**. A module never names a
//! layer to its right.
//!
//! | concept | file |
//! |---|---|
//! | the error type, and what each variant asks the caller to fix | `src/utils/error.rs` |
//! | retry with backoff on busy/locked/deadlock | `src/utils/retry.rs` |
//! | epoch/local/UTC time, the `DATETIME` text format | `src/utils/time.rs` |
//! | settings and the layered loader (`config/`, `BOTDB__…`) | `src/config.rs` |
//! | connections per backend, SQLite pragmas, write transactions | `src/core/engine.rs` |
//! | the model mapping: 25 models, columns, defaults, keys | `src/core/registry/mod.rs` (data: `models.rs`) |
//! | JSON ⇄ typed values ⇄ bind parameters, row decoding | `src/core/value.rs` |
//! | create/update data validation and client-side defaults | `src/core/data.rs` |
//! | the filter language (`$gt $gte $lt $lte $ne $in $nin`, `null`) | `src/core/filter.rs` |
//! | SQL building and execution (select, count, insert, update, delete) | `src/core/exec.rs` |
//! | migrations (the `migration` crate builds the schema) | `src/core/migrate.rs` |
//! | the `Db` handle, health of the schema (`check`, `stats`) | `src/api/db.rs` |
//! | the name-based CRUD (`query`, `save`, `get`, …) | `src/api/named.rs` |
//! | the typed CRUD over `entities` | `src/api/typed.rs` |
//! | the compatibility facade | `src/api/compat.rs` |
//!
//! The `optimization` layer (cache, batch writer, preloader) comes in later; today reads go to the reader
//! pool and every write is its own committed transaction.
//!
//! ## The acknowledgement contract
//!
//! `Ok` from a write means the transaction holding it committed. With SQLite `synchronous = FULL` (the
//! default) it survives a crash and a power loss. A validation error means nothing was written. Errors are
//! typed ([`Error`]) and say what to fix.
//!
//! ## Quick start
//!
//! ```no_run
//! # async fn f() -> botdb::Result<()> {
//! let db = botdb::Db::open(botdb::Settings::for_url("sqlite://data/bot.sqlite?mode=rwc")).await?;
//! let row = db.create("LLMUsage", &serde_json::json!({
//!     "model_name": "m", "model_assign_name": "a", "model_api_provider": "p", "user_id": "u",
//!     "request_type": "chat", "endpoint": "/v1", "prompt_tokens": 10, "completion_tokens": 5,
//!     "total_tokens": 15, "cost": 0.01, "status": "success"
//! })).await?;
//! db.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod config;
pub mod core;
pub mod optimization;
pub mod utils;

pub use entities;
pub use sea_orm;

pub use api::compat::{self, ActionInfo, Compat, MODEL_MAPPING};
pub use api::db::{CheckReport, Db, Health, TableStats};
pub use api::named::{QueryOutput, QueryRequest, QueryType};
pub use api::typed::Where;
pub use config::{DatabaseSettings, DatabaseUrl, Settings, Synchronous};
pub use core::value::{Row, Rows};
pub use optimization::cache::CacheStats;
pub use utils::error::{Error, Result};

/// The names most callers need.
pub mod prelude {
    pub use crate::{ActionInfo, Db, Error, QueryOutput, QueryRequest, QueryType, Result, Row, Settings, Where};
}
