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
//! | the error type, what each variant asks the caller to fix, driver-code classification | `src/utils/error.rs` |
//! | retry with backoff on busy/locked/deadlock | `src/utils/retry.rs` |
//! | epoch/local/UTC time, the `DATETIME` text format | `src/utils/time.rs` |
//! | the stable hash of everything named in Redis (XXH3, fixed seed) | `src/utils/stable_hash.rs` |
//! | a dedicated thread with its own runtime (drives the Redis connection) | `src/utils/runtime.rs` |
//! | settings and the layered loader (`config/`, `BOTDB__…`) | `src/config.rs` |
//! | connections per backend, SQLite pragmas, write transactions | `src/core/engine.rs` |
//! | the model mapping: models, columns, defaults, keys, and their annotations (partition, priority, …) | `src/core/registry/mapping.rs` (data: `models.rs`, generated) |
//! | JSON ⇄ typed values ⇄ bind parameters, row decoding | `src/core/value.rs` |
//! | create/update data validation and client-side defaults | `src/core/data.rs` |
//! | the filter language (`$gt $gte $lt $lte $ne $in $nin $like $contains`, `null`, `$or $and $not`) | `src/core/filter.rs` |
//! | SQL building and execution (select, count, insert, update, delete) | `src/core/exec.rs` |
//! | migrations (the `migration` crate builds the schema) | `src/core/migrate.rs` |
//! | **the read and write entry points**: read-your-writes, cache, scheduler or direct path, warm-ups | `src/optimization/store.rs` |
//! | partitions and stripes, read scope, write reach (shared by cache and batch) | `src/optimization/partition.rs` |
//! | the cache: L1/L2 (moka), lookup, single-flight, coherence on commit | `src/optimization/cache/tiers.rs` |
//! | generation counters (how invalidation stays exact and O(1)) | `src/optimization/cache/generations.rs` |
//! | recent-history windows answering reads | `src/optimization/cache/window.rs` |
//! | windows carried across commits (edited in place, not reloaded) | `src/optimization/cache/carry.rs` |
//! | the Redis tier: breaker, timeouts, shared counters, encoding (`redis_off.rs` without the feature) | `src/optimization/cache/redis.rs` |
//! | the invalidation bus (pub/sub, resync after reconnect) | `src/optimization/cache/bus.rs` |
//! | the fence: writes that missed Redis are never read stale by other processes | `src/optimization/cache/fence.rs` (its table: `src/core/fence.rs`) |
//! | cache statistics and part states | `src/optimization/cache/stats.rs` |
//! | sessions: a caller's pending writes applied to committed answers (read-your-writes) | `src/optimization/session.rs` |
//! | point entries written through on commit | `src/optimization/cache/points.rs` |
//! | the preloader (its recipe: the registry's preload roles) | `src/optimization/preload.rs` |
//! | the batch scheduler: tickets, bounds, read-your-writes waits | `src/optimization/batch/scheduler.rs` |
//! | priorities' aging queue | `src/optimization/batch/queue.rs` |
//! | adaptive batch size and linger | `src/optimization/batch/controller.rs` |
//! | which writes of a batch share a statement (commutation, grouping), and which fold into its inserts | `src/optimization/batch/plan.rs` |
//! | one batch in one transaction: chunking, isolation of failing writes | `src/optimization/batch/executor.rs` |
//! | grouped statements: updates, summed increments, upserts | `src/optimization/batch/grouped.rs` |
//! | writer threads and lanes: collect, execute, acknowledge in commit order | `src/optimization/batch/writer.rs` |
//! | the writes a ticket can carry, and what they answer | `src/optimization/batch/ops.rs` |
//! | the `Db` handle, background jobs, health, `check`, `stats`, backup | `src/api/db.rs` |
//! | whole tables: checksums, copies between backends, restore, JSONL export/import | `src/api/transfer.rs` |
//! | the name-based CRUD (`query`, `save`, `get`, `increment`, pages, aggregates, `distinct`, …) | `src/api/named.rs` |
//! | bulk writes, each item with its own outcome (`create_many`, `update_many`, `upsert_many`) | `src/api/bulk.rs` |
//! | explicit transactions for read-modify-write (`transaction`, `Tx`) | `src/api/transaction.rs` |
//! | writes that hand back their ticket (`submit_create`, `submit_update`, …) | `src/api/deferred.rs` |
//! | the typed CRUD over `entities` | `src/api/typed.rs` |
//! | the compatibility facade | `src/api/compat.rs` |
//! | every metric, with its description | `src/utils/metrics.rs` |
//! | the maintenance binary | `src/bin/botdb-admin/` (feature `cli`) |
//! | the load harness (workload, baseline, report) | `src/bin/botdb-loadtest/` (feature `cli`) |
//!
//! Only what the crate root re-exports is public; `core`, `optimization` and `utils` are private. A read:
//! the api validates it into a canonical select and calls the store's one read entry point, which asks the
//! cache (L1, L2 or Redis, or one load from a reader connection however many callers miss together) and,
//! for a session with pending writes, applies them to the answer. A write: validated first, then handed
//! to the store's one write entry point, which queues it with its model's priority; the caller holds a
//! [`Ticket`]; a writer thread (one per lane; a model's writes keep one lane, so they apply in submission
//! order) collects a batch, runs it in one transaction, and hands it to its acknowledger, which bumps the
//! cache generations of what it touched, carries the recent-history windows it can edit, and only then
//! resolves the tickets.
//!
//! ## Features
//!
//! `sqlite`, `postgres`, `mysql` (the backends), `redis` (the shared tier) and `cli` (what only the binaries
//! need), all on by default. `--no-default-features --features sqlite` is the embedded library alone.

//! ## The acknowledgement contract
//!
//! `Ok` from a write (or from awaiting its ticket) means the transaction holding it committed; with SQLite
//! `synchronous = FULL` (the default) it survives a crash and a power loss. A validation error means nothing
//! was written. `Overloaded`, `ShuttingDown` and `Busy` mean not accepted or not committed; `Indeterminate`
//! means COMMIT was cut off and the outcome is unknown. A dropped ticket does not cancel its write. Errors
//! are typed ([`Error`]) and say what to fix.
//!
//! ## The read contract
//!
//! | a read through | sees | waits for |
//! |---|---|---|
//! | any handle ([`Db`]) | every write acknowledged before the read began (generations move before tickets resolve) | nothing: never another caller's queued writes |
//! | a session ([`Db::session`]) | also its own pending writes, before they commit (rows of pending inserts have `id: null`) | nothing for recent-history windows, point reads by a key and filtered reads botdb can evaluate, with pending inserts and updates, increments and deletes by a key; otherwise its own pending writes to the model, and only those |
//!
//! A pending write that fails leaves its session's view; its ticket reports the error. After a commit the
//! committed rows are written through to the cache (recent-history windows, and point entries by `id`, unique
//! columns and natural keys), so the read that follows a write hits.
//!
//! ## Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> botdb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("sqlite://{}/bot.sqlite?mode=rwc", dir.path().display());
//! // url: "sqlite://data/bot.sqlite?mode=rwc" (the folder is created)
//! let db = botdb::Db::open(botdb::Settings::for_url(url)).await?;
//! let row = db.create("LLMUsage", &serde_json::json!({
//!     "model_name": "m", "model_assign_name": "a", "model_api_provider": "p", "user_id": "u",
//!     "request_type": "chat", "endpoint": "/v1", "prompt_tokens": 10, "completion_tokens": 5,
//!     "total_tokens": 15, "cost": 0.01, "status": "success"
//! })).await?;
//! let again = db.find_one("LLMUsage", &serde_json::json!({"id": row["id"]}), &[]).await?;
//! assert_eq!(again.unwrap()["total_tokens"], 15);
//! db.shutdown().await;
//! # Ok(()) }
//! ```

// The compatibility facade's futures nest the whole read and write paths (cache, session, scheduler): their
// layout needs more than the default query depth in release builds.
#![recursion_limit = "256"]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("botdb needs at least one backend feature: sqlite, postgres or mysql");

mod api;
pub mod config;
mod core;
mod optimization;
mod utils;

pub use entities;
pub use sea_orm;

pub use api::compat::{self, ActionInfo, Compat, MODEL_MAPPING};
pub use api::db::{CheckReport, Db, Health, HealthStatus, TableStats};
pub use api::named::{QueryOutput, QueryRequest, QueryType};
pub use api::transaction::{TRANSACTION_LIMIT, Tx};
pub use api::transfer::{Progress, TableMoved, TableSum};
pub use api::typed::Where;
pub use config::{DatabaseSettings, DatabaseUrl, Settings, Synchronous};
pub use core::migrate::MigrationState;
pub use core::registry::{ColumnDef, DefaultValue, Key, Kind, ModelDef, model, models};
pub use core::value::{Row, Rows};
pub use optimization::batch::{BatchStats, Priority, Ticket, WriteOutcome};
pub use optimization::cache::{CacheStats, PartState};
pub use optimization::preload::PreloadReport;
pub use utils::error::{Error, Result};
pub use utils::metrics::describe as describe_metrics;

/// The names most callers need.
pub mod prelude {
    pub use crate::{ActionInfo, Db, Error, QueryOutput, QueryRequest, QueryType, Result, Row, Settings, Where};
}

/// Internals for botdb's own integration tests and benchmarks. **Not part of the API**: no stability promise,
/// and the binaries never use it.
#[doc(hidden)]
pub mod testing {
    pub use crate::core::data::{Changes, NewRow};
    pub use crate::core::engine::Engine;
    pub use crate::core::exec::{self, Select};
    pub use crate::core::filter::Filter;
    pub use crate::core::value::Cell;
    pub use crate::optimization::batch::WriteOp;
    pub use crate::optimization::batch::executor;
    pub use crate::optimization::cache::{Cache, Loader, Reach, Touched};
    pub use crate::utils::time;

    /// The engine under a handle.
    pub fn engine(db: &crate::Db) -> &Engine {
        db.engine()
    }

    /// The lane (writer) that takes `model`'s writes, when writes are batched.
    pub fn lane(db: &crate::Db, model: &crate::ModelDef) -> Option<usize> {
        db.store().batch().map(|b| b.lane(model))
    }

    /// The cache under a handle.
    pub fn cache(db: &crate::Db) -> &Cache {
        db.cache()
    }
}
