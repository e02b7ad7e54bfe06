//! The `Db` handle: one cheap-to-clone value that owns the engine (and, in later layers, the cache and the
//! batch writer). Build it with [`Db::open`], end it with [`Db::shutdown`].

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::Serialize;

use crate::config::Settings;
use crate::core::engine::Engine;
use crate::core::exec::{self, Select};
use crate::core::migrate::{self, MigrationState};
use crate::core::registry;
use crate::core::value::{Row, Rows};
use crate::optimization::batch::{BatchStats, BatchWriter, Priority, Ticket, ops::WriteOp};
use crate::optimization::cache::{Cache, CacheStats};
use crate::optimization::preload::{self, PreloadReport};
use crate::utils::error::{Error, Result};

/// The botdb handle. Cheap to clone (an `Arc` inside); create one per database and share it.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Inner>,
    /// Writes bypass the batch scheduler (see [`Db::direct`]).
    direct: bool,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    settings: Settings,
    cache: Cache,
    batch: Option<BatchWriter>,
    /// Samples the pool gauges every second.
    sampler: tokio::task::JoinHandle<()>,
    /// Refreshes the most active chats ahead of expiry (when `preload.refresh_ms` > 0).
    refresher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Chats warmed recently because a message was written to them.
    warmed: moka::sync::Cache<String, ()>,
    /// Bounds background warm-ups.
    warming: Arc<tokio::sync::Semaphore>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sampler.abort();
        if let Some(h) = self.refresher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            h.abort();
        }
    }
}

/// Publishes `botdb_pool_connections{pool, state}` every second while the engine lives.
fn sample_pools(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            for (pool, in_use, idle) in engine.pool_usage() {
                metrics::gauge!("botdb_pool_connections", "pool" => pool, "state" => "in_use").set(f64::from(in_use));
                metrics::gauge!("botdb_pool_connections", "pool" => pool, "state" => "idle").set(f64::from(idle));
            }
        }
    })
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

/// The result of [`Db::health`].
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ok` (everything up), `degraded` (the database is up, Redis is not) or `down` (the database is not).
    pub status: &'static str,
    /// `up` or `down`: a trivial query answered within 2 s.
    pub database: &'static str,
    /// How long that query took, in ms.
    pub database_ms: f64,
    /// `up`, `degraded` (breaker open or not yet synchronised: reads skip it) or `absent`.
    pub redis: &'static str,
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
    /// Connects and, unless `database.run_migrations` is false, applies pending migrations.
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Database`] or [`Error::Migration`].
    pub async fn open(settings: Settings) -> Result<Db> {
        let engine = Engine::connect(&settings.database).await?;
        if settings.database.run_migrations {
            migrate::up(engine.writer(), None).await?;
        }
        let cache = Cache::new(&settings.cache)?;
        tracing::info!(url = %settings.database.url, backend = ?engine.backend(), redis = cache.redis_state(), "botdb opened");
        let batch = settings.batch.enabled.then(|| BatchWriter::start(engine.clone(), cache.clone(), &settings.batch));
        let sampler = sample_pools(engine.clone());
        let warming = Arc::new(tokio::sync::Semaphore::new(settings.preload.concurrency.max(1)));
        let warmed =
            moka::sync::Cache::builder().max_capacity(10_000).time_to_live(std::time::Duration::from_secs(600)).build();
        let inner = Inner { engine, settings, cache, batch, sampler, refresher: Default::default(), warmed, warming };
        let db = Db { inner: Arc::new(inner), direct: false };
        let every = db.settings().preload.refresh_ms;
        if db.settings().preload.enabled && every > 0 {
            let weak = Arc::downgrade(&db.inner);
            let handle = tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let db = Db { inner, direct: false };
                    let (load, s) = (db.loader(), db.settings());
                    let r = preload::warm(
                        db.cache(),
                        db.engine().reader(),
                        &s.preload,
                        s.cache.window_rows,
                        None,
                        &load,
                        true,
                    );
                    if let Err(e) = r.await {
                        tracing::debug!(error = %e, "cache refresh failed");
                    }
                }
            });
            *db.inner.refresher.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
        }
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
        Db { inner: self.inner.clone(), direct: true }
    }

    /// The batch scheduler writes go through, unless disabled or this handle is [`Db::direct`].
    pub(crate) fn batch(&self) -> Option<&BatchWriter> {
        if self.direct { None } else { self.inner.batch.as_ref() }
    }

    /// Queues a validated write with `priority` and returns its ticket (awaiting it yields the committed
    /// outcome; dropping it does not cancel the write). Without a scheduler the write runs now.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::ShuttingDown`].
    pub async fn submit(&self, op: WriteOp, priority: Priority) -> Result<Ticket> {
        match self.inner.batch.as_ref() {
            Some(b) => b.submit(op, priority).await,
            None => Err(Error::InvalidRequest("the batch scheduler is disabled (batch.enabled = false)".into())),
        }
    }

    /// Returns once every write submitted before this call has committed (or failed).
    pub async fn flush(&self) {
        if let Some(b) = &self.inner.batch {
            b.flush().await;
        }
    }

    /// Batch scheduler statistics (none when it is disabled).
    pub fn batch_stats(&self) -> Option<BatchStats> {
        self.inner.batch.as_ref().map(BatchWriter::stats)
    }

    /// The read cache.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Cache statistics since this handle opened.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Drops every cached entry here and, with Redis, in every process sharing it. Returns whether other
    /// processes were told (false without Redis).
    pub async fn flush_cache(&self) -> bool {
        self.inner.cache.flush().await
    }

    /// Warms the cache for `chats` (or the most recently active ones): their recent history and stream.
    ///
    /// # Errors
    /// [`Error::Database`] when the active chats cannot be listed.
    pub async fn preload(&self, chats: Option<Vec<String>>) -> Result<PreloadReport> {
        let load = self.loader();
        let s = self.settings();
        preload::warm(&self.inner.cache, self.engine().reader(), &s.preload, s.cache.window_rows, chats, &load, false)
            .await
    }

    /// Warms `chat` in the background the first time a message is written to it (per 10 minutes), when
    /// `preload.on_activity` is on and a warm-up slot is free; never delays the caller.
    pub(crate) fn chat_activity(&self, chat: &str) {
        let s = self.settings();
        if !s.preload.enabled || !s.preload.on_activity || self.inner.warmed.contains_key(chat) {
            return;
        }
        let Ok(permit) = self.inner.warming.clone().try_acquire_owned() else { return };
        self.inner.warmed.insert(chat.to_owned(), ());
        let (db, chat) = (self.clone(), chat.to_owned());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = db.preload(Some(vec![chat])).await {
                tracing::debug!(error = %e, "warming an active chat failed");
            }
        });
    }

    /// The cache's way to the database: a select on the reader pool.
    pub(crate) fn loader(
        &self,
    ) -> impl Fn(Select) -> futures_util::future::BoxFuture<'static, Result<Vec<Row>>> + Send + Sync + 'static {
        let reader = self.engine().reader().clone();
        move |sel: Select| {
            let reader = reader.clone();
            Box::pin(async move { exec::select(&reader, &sel).await })
        }
    }

    /// A read through the cache, after any queued write to its model (read-your-writes).
    pub(crate) async fn select(&self, sel: &Select) -> Result<Rows> {
        if let Some(b) = &self.inner.batch {
            let m = registry::model_index(sel.model);
            if b.has_pending(m) {
                let stripe = match crate::optimization::cache::policy::read_scope(sel) {
                    crate::optimization::cache::generations::Field::Stripe(s) => Some(s),
                    _ => None,
                };
                b.wait_for(m, stripe).await;
            }
        }
        let (load, started) = (self.loader(), std::time::Instant::now());
        let rows = self.inner.cache.read(sel, &load).await;
        self.slow("read", sel.model.name, started);
        rows
    }

    /// The engine (connections and transactions) under this handle.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The settings this handle was opened with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The backend in use.
    pub fn backend(&self) -> DbBackend {
        self.inner.engine.backend()
    }

    /// Stops intake, commits every queued write (failing explicitly what misses `batch.shutdown_timeout_ms`),
    /// stops the cache's bus, then closes the pools. Calls made after this fail.
    pub async fn shutdown(&self) {
        if let Some(b) = &self.inner.batch {
            b.shutdown(std::time::Duration::from_millis(self.settings().batch.shutdown_timeout_ms)).await;
        }
        self.inner.cache.shutdown();
        self.inner.sampler.abort();
        if let Some(h) = self.inner.refresher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            h.abort();
        }
        self.inner.engine.close().await;
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
        let database = if matches!(ping, Ok(Ok(_))) { "up" } else { "down" };
        let redis = self.cache().redis_state();
        let (queued_writes, last_flush_age_ms) = match &self.inner.batch {
            Some(b) => (b.stats().queued.iter().sum(), b.last_flush_age().map(|d| d.as_secs_f64() * 1e3)),
            None => (0, None),
        };
        let status = match (database, redis) {
            ("down", _) => "down",
            (_, "degraded") => "degraded",
            _ => "ok",
        };
        Health {
            status,
            database,
            database_ms: started.elapsed().as_secs_f64() * 1e3,
            redis,
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

    /// Rows (and on SQLite, bytes) per table.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn stats(&self) -> Result<Vec<TableStats>> {
        let conn = self.engine().reader();
        let backend = self.backend();
        let mut out = Vec::with_capacity(25);
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
