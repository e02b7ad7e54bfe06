//! The `Db` handle: one cheap-to-clone value that owns the optimization layer's [`Store`] (engine, cache,
//! batch writer) and the background tasks. Build it with [`Db::open`], end it with [`Db::shutdown`].

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::Serialize;

use crate::config::Settings;
use crate::core::engine::Engine;
use crate::core::migrate::{self, MigrationState};
use crate::core::registry::{self, Priority};
use crate::optimization::batch::{BatchStats, BatchWriter, Ticket, WriteOp};
use crate::optimization::cache::{Cache, CacheStats, PartState};
use crate::optimization::partition::{Reach, Touched};
use crate::optimization::preload::PreloadReport;
use crate::optimization::session::SessionState;
use crate::optimization::store::Store;
use crate::utils::error::{Error, Result};

/// The botdb handle. Cheap to clone (an `Arc` inside); create one per database and share it.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Inner>,
    /// Writes bypass the batch scheduler (see [`Db::direct`]).
    direct: bool,
    /// The session this handle reads and writes for (see [`Db::session`]).
    session: Option<SessionState>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    settings: Settings,
    /// The periodic jobs: the pool-gauge sampler and (when `preload.refresh_ms` > 0) the refresher of the
    /// most active chats. Stopped by [`Db::shutdown`], or aborted when the last handle drops.
    jobs: std::sync::Mutex<JoinSet<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).abort_all();
    }
}

/// Publishes `botdb_pool_connections{pool, state}` every second while the engine lives.
async fn sample_pools(engine: Engine) {
    {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            for (pool, in_use, idle) in engine.pool_usage() {
                metrics::gauge!(crate::utils::metrics::POOL_CONNECTIONS, "pool" => pool, "state" => "in_use")
                    .set(f64::from(in_use));
                metrics::gauge!(crate::utils::metrics::POOL_CONNECTIONS, "pool" => pool, "state" => "idle")
                    .set(f64::from(idle));
            }
        }
    }
}

/// Reloads the most active chats' entries every `every`, ahead of their expiry, while a handle lives.
async fn refresh_active(weak: std::sync::Weak<Inner>, every: Duration) {
    {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let store = inner.store.clone();
            drop(inner);
            if let Err(e) = store.preload(None, true).await {
                tracing::debug!(error = %e, "cache refresh failed");
            }
        }
    }
}

/// SQLite: every `every`, looks for commits by other connections (see `Engine::foreign_commits`) and, when
/// one happened since the last look (or the writer connection was replaced), makes every cached read
/// unreachable, as a write to every table would.
async fn watch_foreign_writes(weak: std::sync::Weak<Inner>, every: Duration, mut last: i64) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let db = Db { inner, direct: false, session: None };
        match db.engine().foreign_commits().await {
            Ok(Some((fresh, version))) if fresh || version != last => {
                last = version;
                let all: Vec<String> = registry::models().iter().map(|m| m.name.to_owned()).collect();
                if let Err(e) = db.forget_cached(&all, None).await {
                    tracing::warn!(error = %e, "forgetting the cache after a foreign commit failed");
                }
                tracing::debug!(fresh, "another connection committed: cached reads dropped");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "PRAGMA data_version failed"),
        }
    }
}

/// The retention job: every `every`, prunes each configured model (see `RetentionSettings`).
async fn retain(weak: std::sync::Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let db = Db { inner, direct: false, session: None };
        let r = &db.settings().retention;
        for (model, age) in r.models.clone() {
            match db
                .prune(&model, None, Duration::from_secs(age), &serde_json::Value::Null, r.batch.max(1), false)
                .await
            {
                Ok(n) if n > 0 => tracing::info!(model, deleted = n, "retention pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(model, error = %e, "retention failed"),
            }
        }
    }
}

/// Rows and (SQLite) size of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    /// Model name.
    pub model: &'static str,
    /// Table name.
    pub table: &'static str,
    /// Row count.
    pub rows: u64,
    /// Bytes on disk with its indexes (SQLite only, from `dbstat` when compiled in).
    pub bytes: Option<u64>,
}

/// The overall verdict of [`Db::health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything configured is up.
    Ok,
    /// The database is up; Redis is not (reads skip it).
    Degraded,
    /// The database is not answering.
    Down,
}

/// The result of [`Db::health`].
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The verdict: ok, degraded (the database is up, but Redis is not, or writes fail) or down (the
    /// database is not).
    pub status: HealthStatus,
    /// Up or down: a trivial query answered within 2 s.
    pub database: PartState,
    /// How long that query took, in ms.
    pub database_ms: f64,
    /// Up, degraded (breaker open or not yet synchronised: reads skip it) or absent.
    pub redis: PartState,
    /// Up, or degraded while writes fail: the last batch's transaction could not commit (the database
    /// answers reads but refuses writes: locked, read-only, disk full).
    pub writes: PartState,
    /// Writes queued or running in the batch scheduler.
    pub queued_writes: usize,
    /// How long ago the last batch committed, in ms (none before the first).
    pub last_flush_age_ms: Option<f64>,
}

/// The result of [`Db::check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The backend's integrity check said `ok` (SQLite `PRAGMA integrity_check`; other backends: reachable).
    pub integrity_ok: bool,
    /// The integrity check's own messages when not ok.
    pub integrity_messages: Vec<String>,
    /// Migrations not yet applied.
    pub pending_migrations: Vec<String>,
    /// Tables of the model mapping missing from the database.
    pub missing_tables: Vec<String>,
}

impl CheckReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.integrity_ok && self.pending_migrations.is_empty() && self.missing_tables.is_empty()
    }
}

impl Db {
    /// Connects and, unless `database.run_migrations` is false, applies pending migrations; starts the
    /// batch writer, the periodic jobs and (with `preload.enabled`) warms the cache.
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Database`] (also when a batch writer cannot start) or [`Error::Migration`].
    pub async fn open(settings: Settings) -> Result<Db> {
        for model in settings.retention.models.keys() {
            let m = registry::model(model).map_err(|e| Error::Config(format!("retention.models: {e}")))?;
            if m.order.is_none() {
                return Err(Error::Config(format!("retention.models: `{model}` has no time column to prune by")));
            }
        }
        let engine = Engine::connect(&settings.database).await?;
        if settings.database.run_migrations {
            migrate::up(engine.writer(), None).await?;
        }
        let store = Store::open(engine.clone(), settings.clone()).await?;
        tracing::info!(url = %settings.database.url, backend = ?engine.backend(), redis = %store.cache().redis_state(), "botdb opened");
        let mut jobs = JoinSet::new();
        jobs.spawn(sample_pools(engine));
        let inner = Arc::new(Inner { store, settings, jobs: std::sync::Mutex::new(JoinSet::new()) });
        let every = inner.settings.preload.refresh_ms;
        if inner.settings.preload.enabled && every > 0 {
            jobs.spawn(refresh_active(Arc::downgrade(&inner), Duration::from_millis(every)));
        }
        let retention = &inner.settings.retention;
        if !retention.models.is_empty() && retention.every_s > 0 {
            jobs.spawn(retain(Arc::downgrade(&inner), Duration::from_secs(retention.every_s)));
        }
        let check = inner.settings.cache.external_check_ms;
        if check > 0
            && inner.settings.cache.enabled
            && let Some((_, version)) = inner.store.engine().foreign_commits().await?
        {
            jobs.spawn(watch_foreign_writes(Arc::downgrade(&inner), Duration::from_millis(check), version));
        }
        *inner.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = jobs;
        let db = Db { inner, direct: false, session: None };
        if db.settings().preload.enabled && db.settings().database.run_migrations {
            match db.preload(None).await {
                Ok(r) => tracing::info!(chats = r.chats, reads = r.reads, "cache preloaded"),
                Err(e) => tracing::warn!(error = %e, "cache preload failed; starting cold"),
            }
        }
        Ok(db)
    }

    /// This handle with writes bypassing the batch scheduler: each write is its own transaction, committed
    /// before the call returns (the same acknowledgement, without batching). Reads still wait for writes
    /// queued through other handles.
    pub fn direct(&self) -> Db {
        Db { inner: self.inner.clone(), direct: true, session: self.session.clone() }
    }

    /// A handle for one logical caller (the handler of one message, one chat's loop): its reads see the
    /// writes submitted through it (`submit_create`, `submit_update`, …) before they commit, and wait for
    /// nobody else's. Cheap; make one per message. Every other handle's reads see a write once it is
    /// acknowledged, never before, and never wait for it.
    ///
    /// | a read through | sees | waits for |
    /// |---|---|---|
    /// | any handle | every write acknowledged before the read began | nothing |
    /// | a session | also its own pending writes (rows of pending inserts have `id: null`) | its own pending writes to the model, only when the read is neither a recent-history window nor a point read by a unique key, or a pending write is neither an insert nor an update by a key |
    pub fn session(&self) -> Db {
        Db { inner: self.inner.clone(), direct: self.direct, session: Some(SessionState::default()) }
    }

    /// How many reads through this session went to the database (none for a handle that is not a session).
    /// With the keys it read, a caller can tell which of its reads were cache hits.
    pub fn session_loads(&self) -> u64 {
        self.session.as_ref().map_or(0, SessionState::loads)
    }

    /// The session of this handle, if it is one.
    pub(crate) fn session_state(&self) -> Option<&SessionState> {
        self.session.as_ref()
    }

    /// The optimization layer: every read and write goes through it.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether this handle bypasses the scheduler.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Queues a validated write with `priority` and returns its ticket (awaiting it yields the committed
    /// outcome; dropping it does not cancel the write). For botdb's own tests.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::ShuttingDown`], or [`Error::InvalidRequest`] for an inconsistent write.
    #[doc(hidden)]
    pub async fn submit(&self, op: WriteOp, priority: Priority) -> Result<Ticket> {
        self.store().submit(op, Some(priority), self.direct, self.session.as_ref()).await
    }

    /// Returns once every write submitted before this call has committed (or failed).
    pub async fn flush(&self) {
        if let Some(b) = self.store().batch() {
            b.flush().await;
        }
    }

    /// Batch scheduler statistics (none when it is disabled).
    pub fn batch_stats(&self) -> Option<BatchStats> {
        self.store().batch().map(BatchWriter::stats)
    }

    /// The read cache.
    pub(crate) fn cache(&self) -> &Cache {
        self.store().cache()
    }

    /// The Redis tier's state: absent (not configured), up, or degraded (breaker open or not yet
    /// synchronised: reads skip it).
    pub fn redis_state(&self) -> PartState {
        self.cache().redis_state()
    }

    /// Cache statistics since this handle opened.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache().stats()
    }

    /// Statistics that running processes published to Redis (empty without Redis).
    pub async fn published_cache_stats(&self) -> Vec<serde_json::Value> {
        self.cache().published_stats().await
    }

    /// Drops every cached entry here and, with Redis, in every process sharing it. Returns how many other
    /// running processes received the flush; `None` without Redis, or when Redis did not take it.
    pub async fn flush_cache(&self) -> Option<u64> {
        self.cache().flush().await
    }

    /// Makes the cached reads of `models` unreachable here and, with Redis, in every process sharing it, as
    /// a write to every row would; with `partition` (a value of the models' partition column: `chat_id` of
    /// `Messages`, `stream_id` of `ChatStreams`, `person_id` of `PersonInfo`, …), only the reads of that
    /// partition. For an operator who changed rows outside botdb.
    ///
    /// # Errors
    /// [`Error::UnknownModel`]; [`Error::InvalidRequest`] for a partition on a model that has none.
    pub async fn forget_cached(&self, models: &[String], partition: Option<&str>) -> Result<()> {
        let mut touched = Vec::with_capacity(models.len());
        for name in models {
            let model = registry::model(name)?;
            let reach = match partition {
                None => Reach::Everything,
                Some(_) if model.partition.is_none() => {
                    return Err(Error::InvalidRequest(format!(
                        "model `{}` has no partition column: forget all of it (give no partition)",
                        model.name
                    )));
                }
                Some(p) => Reach::Partitions(vec![serde_json::Value::String(p.to_owned())]),
            };
            touched.push(Touched { model, reach });
        }
        self.cache().publish(&touched, None).await;
        Ok(())
    }

    /// Warms the cache for `chats` (or the most recently active ones): their recent history and stream.
    ///
    /// # Errors
    /// [`Error::Database`] when the active chats cannot be listed.
    pub async fn preload(&self, chats: Option<Vec<String>>) -> Result<PreloadReport> {
        self.store().preload(chats, false).await
    }

    /// The engine (connections and transactions) under this handle.
    pub(crate) fn engine(&self) -> &Engine {
        self.store().engine()
    }

    /// A plain sea-orm connection to the read pool, for queries botdb does not offer. Reads through it skip
    /// the cache and read-your-writes; never write through it (the cache would not know).
    pub fn reader(&self) -> &sea_orm::DatabaseConnection {
        self.engine().reader()
    }

    /// A plain sea-orm connection pool with botdb's connection settings (SQLite: WAL, `synchronous`, busy
    /// timeout, on every connection) and no botdb layer at all: what the load harness's baseline uses.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::Database`], as [`Db::open`].
    pub async fn connect_plain(settings: &crate::config::DatabaseSettings) -> Result<sea_orm::DatabaseConnection> {
        Ok(Engine::connect(settings).await?.reader().clone())
    }

    /// The settings this handle was opened with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The backend in use.
    pub fn backend(&self) -> DbBackend {
        self.engine().backend()
    }

    /// Stops the background jobs and warm-ups, stops intake, commits every queued write (failing explicitly
    /// what misses `batch.shutdown_timeout_ms`), stops the cache's bus, then closes the pools. Calls made
    /// after this fail.
    pub async fn shutdown(&self) {
        let mut jobs = std::mem::take(&mut *self.inner.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        jobs.shutdown().await;
        self.store().shutdown().await;
        self.engine().close().await;
    }

    /// Writes a consistent copy of a SQLite database to `path` (SQLite's own `VACUUM INTO`, while the
    /// database stays in use). The file must not exist yet.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] on PostgreSQL/MySQL (use the server's own dump tools) or for a path that
    /// exists; [`Error::Database`] when SQLite cannot write it.
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        if self.backend() != DbBackend::Sqlite {
            return Err(Error::InvalidRequest("backup_to copies SQLite databases; use pg_dump or mysqldump".into()));
        }
        if path.exists() {
            return Err(Error::InvalidRequest(format!("{} exists already; choose a new file", path.display())));
        }
        let target = path.to_str().ok_or_else(|| Error::InvalidRequest("the backup path must be UTF-8".into()))?;
        let stmt = Statement::from_sql_and_values(DbBackend::Sqlite, "VACUUM INTO ?", [target.into()]);
        self.engine().writer().execute_raw(stmt).await.map_err(|e| Error::from_db("backup", "", e))?;
        Ok(())
    }

    /// Applies `steps` pending migrations (all when `None`).
    ///
    /// # Errors
    /// [`Error::Migration`].
    pub async fn migrate_up(&self, steps: Option<u32>) -> Result<()> {
        migrate::up(self.engine().writer(), steps).await
    }

    /// Reverts `steps` applied migrations (all when `None`).
    ///
    /// # Errors
    /// [`Error::Migration`].
    pub async fn migrate_down(&self, steps: Option<u32>) -> Result<()> {
        migrate::down(self.engine().writer(), steps).await
    }

    /// Drops every table and re-applies every migration. Destroys all data.
    ///
    /// # Errors
    /// [`Error::Migration`].
    pub async fn migrate_fresh(&self) -> Result<()> {
        migrate::fresh(self.engine().writer()).await
    }

    /// Every migration with its state.
    ///
    /// # Errors
    /// [`Error::Migration`].
    pub async fn migrate_status(&self) -> Result<Vec<MigrationState>> {
        migrate::status(self.engine().writer()).await
    }

    /// Which parts are up: the database, Redis, the write queue.
    pub async fn health(&self) -> Health {
        let started = std::time::Instant::now();
        let ping = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.engine().reader().execute_unprepared("SELECT 1"),
        )
        .await;
        let database = if matches!(ping, Ok(Ok(_))) { PartState::Up } else { PartState::Down };
        let redis = self.cache().redis_state();
        let (queued_writes, last_flush_age_ms, failing) = match self.store().batch() {
            Some(b) => (b.stats().queued.iter().sum(), b.last_flush_age().map(|d| d.as_secs_f64() * 1e3), b.failing()),
            None => (0, None, false),
        };
        let writes = if failing { PartState::Degraded } else { PartState::Up };
        let status = match (database, redis, writes) {
            (PartState::Down, _, _) => HealthStatus::Down,
            (_, PartState::Degraded, _) | (_, _, PartState::Degraded) => HealthStatus::Degraded,
            _ => HealthStatus::Ok,
        };
        Health {
            status,
            database,
            database_ms: started.elapsed().as_secs_f64() * 1e3,
            redis,
            writes,
            queued_writes,
            last_flush_age_ms,
        }
    }

    /// Integrity check, pending migrations and missing tables.
    ///
    /// # Errors
    /// [`Error::Database`] when the checks themselves cannot run.
    pub async fn check(&self) -> Result<CheckReport> {
        let conn = self.engine().writer();
        let backend = self.backend();
        let (integrity_ok, integrity_messages) = if backend == DbBackend::Sqlite {
            let rows = conn
                .query_all_raw(Statement::from_string(backend, "PRAGMA integrity_check"))
                .await
                .map_err(|e| Error::from_db("check", "", e))?;
            let msgs: Vec<String> = rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect();
            (msgs.len() == 1 && msgs[0] == "ok", msgs)
        } else {
            conn.execute_unprepared("SELECT 1").await.map_err(|e| Error::from_db("check", "", e))?;
            (true, vec![])
        };
        let pending = self.migrate_status().await?.into_iter().filter(|m| !m.applied).map(|m| m.name).collect();
        let mut missing_tables = vec![];
        for m in registry::models() {
            let sql = format!("SELECT 1 FROM {} WHERE 1 = 0", quote(backend, m.table));
            if conn.execute_unprepared(&sql).await.is_err() {
                missing_tables.push(m.table.to_owned());
            }
        }
        Ok(CheckReport { integrity_ok, integrity_messages, pending_migrations: pending, missing_tables })
    }

    /// What the database lacks of the contract's schema (`docs/schema.md`): missing columns and index names
    /// of the tables it has, one line each; empty when it matches. Extra columns and indexes are not
    /// differences. (`botdb-admin check --schema`.)
    ///
    /// # Errors
    /// [`Error::Database`] while inspecting.
    pub async fn check_schema(&self) -> Result<Vec<String>> {
        let manager = migration::SchemaManager::new(self.engine().reader());
        migration::schema_differences(&manager).await.map_err(|e| Error::from_db("check_schema", "", e))
    }

    /// Refreshes the query planner's statistics of botdb's tables (`ANALYZE`; MySQL `ANALYZE TABLE`). A
    /// server database filled in bulk has none until autovacuum gets to it, and without them PostgreSQL
    /// plans a grouped `UPDATE … WHERE message_id IN (…)` of 32 keys as a full scan of `messages` (measured:
    /// 10 ms instead of 0.1 ms on 24k rows). Run it after a bulk load (the load harness does, after seeding).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn analyze(&self) -> Result<()> {
        self.on_botdb_tables("analyze", ["ANALYZE TABLE", "ANALYZE", "ANALYZE"]).await
    }

    /// Rebuilds botdb's tables to give back the space of deleted rows: SQLite `VACUUM` (the whole file; it
    /// needs free disk of about the file's size and holds the write lock meanwhile), PostgreSQL `VACUUM`
    /// (online), MySQL `OPTIMIZE TABLE`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn vacuum(&self) -> Result<()> {
        self.on_botdb_tables("vacuum", ["OPTIMIZE TABLE", "VACUUM", "VACUUM"]).await
    }

    /// Runs a maintenance statement (`[MySQL, PostgreSQL, SQLite]` verbs) over botdb's tables (SQLite: the
    /// whole file).
    async fn on_botdb_tables(&self, op: &'static str, [mysql, postgres, sqlite]: [&str; 3]) -> Result<()> {
        let backend = self.backend();
        let tables: Vec<String> = registry::models().iter().map(|m| quote(backend, m.table)).collect();
        let sql = match backend {
            DbBackend::MySql => format!("{mysql} {}", tables.join(", ")),
            DbBackend::Postgres => format!("{postgres} {}", tables.join(", ")),
            _ => sqlite.to_owned(),
        };
        let conn = self.engine().writer();
        if backend == DbBackend::MySql {
            // MySQL answers with a result set (one row per table), which `execute` refuses to read.
            conn.query_all_raw(Statement::from_string(backend, sql)).await.map(drop)
        } else {
            conn.execute_raw(Statement::from_string(backend, sql)).await.map(drop)
        }
        .map_err(|e| Error::from_db(op, "", e))
    }

    /// SQLite: copies the write-ahead log into the database file and truncates it (`PRAGMA
    /// wal_checkpoint(TRUNCATE)`); returns the log's frames and how many were copied.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] on PostgreSQL and MySQL (they manage their logs themselves);
    /// [`Error::Database`], or [`Error::Busy`] when a reader kept the checkpoint from finishing.
    pub async fn checkpoint(&self) -> Result<(i64, i64)> {
        if self.backend() != DbBackend::Sqlite {
            return Err(Error::InvalidRequest(
                "checkpoint is for SQLite's write-ahead log; servers manage theirs".into(),
            ));
        }
        let stmt = Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(TRUNCATE)");
        let row = self.engine().writer().query_one_raw(stmt).await.map_err(|e| Error::from_db("checkpoint", "", e))?;
        let get = |i| row.as_ref().and_then(|r| r.try_get_by_index::<i64>(i).ok()).unwrap_or(0);
        if get(0) != 0 {
            return Err(Error::Busy { attempts: 1, message: "a reader kept the checkpoint from finishing".into() });
        }
        Ok((get(1), get(2)))
    }

    /// Deletes the rows of `model` older than `older_than` by a time column (`by`, or the model's order
    /// column: `Messages.time`, …) that also match `filter`, in writes of at most `batch` rows each, so a
    /// running bot keeps writing between them; every process's cache forgets them as after any delete. A
    /// `FLOAT` time column holds epoch seconds, a `DATETIME` one local time. With `dry_run`, only counts.
    /// Returns the rows deleted (or that would be).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a model without a time column, a column that holds no time, a filter
    /// that is not an object or already names the column; the errors of `find` and `delete`.
    pub async fn prune(
        &self,
        model: &str,
        by: Option<&str>,
        older_than: Duration,
        filter: &serde_json::Value,
        batch: u64,
        dry_run: bool,
    ) -> Result<u64> {
        let m = registry::model(model)?;
        let col = match by {
            Some(c) => m.column_index(c)?,
            None => m.order.ok_or_else(|| {
                Error::InvalidRequest(format!("`{}` has no time column of its own; name one to prune by", m.name))
            })?,
        };
        let name = m.col(col).name;
        let cutoff = match m.col(col).kind {
            registry::Kind::Float => serde_json::json!(crate::utils::time::now_epoch() - older_than.as_secs_f64()),
            registry::Kind::DateTime => {
                let then = crate::utils::time::now_local() - chrono::Duration::from_std(older_than).unwrap_or_default();
                serde_json::json!(crate::utils::time::format_datetime(&then))
            }
            _ => {
                return Err(Error::InvalidRequest(format!(
                    "`{}.{name}` holds no time; choose a FLOAT or DATETIME column",
                    m.name
                )));
            }
        };
        let mut f = match filter {
            serde_json::Value::Null => serde_json::Map::new(),
            serde_json::Value::Object(o) if !o.contains_key(name) => o.clone(),
            serde_json::Value::Object(_) => {
                return Err(Error::InvalidRequest(format!("the filter names `{name}`, the column pruned by")));
            }
            _ => return Err(Error::InvalidRequest("the prune filter must be a JSON object".into())),
        };
        f.insert(name.to_owned(), serde_json::json!({ "$lt": cutoff }));
        let f = serde_json::Value::Object(f);
        if dry_run {
            return self.count(m.name, &f).await;
        }
        let mut deleted = 0;
        loop {
            let rows = self.find(m.name, &f, &["id"], Some(batch.max(1))).await?;
            let ids: Vec<serde_json::Value> = rows.iter().filter_map(|r| r.get("id").cloned()).collect();
            if ids.is_empty() {
                return Ok(deleted);
            }
            let n = self.delete(m.name, &serde_json::json!({ "id": { "$in": ids } })).await?;
            deleted += n;
            // Fewer than a batch left, or another process deleted them first: done.
            if (ids.len() as u64) < batch.max(1) || n == 0 {
                return Ok(deleted);
            }
        }
    }

    /// Rows (and on SQLite, bytes) per table.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn stats(&self) -> Result<Vec<TableStats>> {
        let conn = self.engine().reader();
        let backend = self.backend();
        let mut out = Vec::with_capacity(registry::models().len());
        for m in registry::models() {
            let rows = crate::core::exec::count(conn, m, &crate::core::filter::Filter::all()).await?;
            let bytes = if backend == DbBackend::Sqlite { sqlite_table_bytes(conn, m.table).await } else { None };
            out.push(TableStats { model: m.name, table: m.table, rows, bytes });
        }
        Ok(out)
    }
}

/// Bytes of a table and its indexes from SQLite's `dbstat` virtual table, when the build has it.
async fn sqlite_table_bytes(conn: &sea_orm::DatabaseConnection, table: &str) -> Option<u64> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name IN \
         (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)",
        [table.into()],
    );
    let row = conn.query_one_raw(stmt).await.ok()??;
    row.try_get_by_index::<Option<i64>>(0).ok()?.map(|b| b as u64)
}

/// Quotes a registry table name for `backend` (names come from the registry only).
fn quote(backend: DbBackend, name: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}
