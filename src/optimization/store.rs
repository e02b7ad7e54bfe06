//! The optimization layer's front door: one entry point for reads ([`Store::read`], [`Store::count`]) and
//! one for writes ([`Store::submit`], [`Store::write`]). Read-your-writes, the cache, the batch scheduler,
//! the direct (unbatched) path and the warm-up of active partitions all sit behind them; the api layer
//! validates and calls these, and never reaches further in.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::core::data::NewRow;
use crate::core::engine::Engine;
use crate::core::exec::{self, Select};
use crate::core::filter::Filter;
use crate::core::registry::{ModelDef, Priority, model_index};
use crate::core::value::{Cell, Row, Rows};
use crate::optimization::batch::{BatchWriter, Ticket, WriteOp, WriteOutcome, executor, merge};
use crate::optimization::cache::{Cache, Loader};
use crate::optimization::partition::{Reach, Touched, stripe_of};
use crate::optimization::preload::{self, PreloadReport};
use crate::optimization::session::{Finished, Plan, SessionState};
use crate::utils::error::{Error, Result};

/// How long a partition counts as warmed after a write warmed it (a later write does not warm it again).
const WARM_AGAIN_AFTER: Duration = Duration::from_secs(600);

/// The cache, the scheduler and the engine of one database, behind one read and one write entry point.
/// Cheap to clone (an `Arc` inside).
#[derive(Clone, Debug)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    cache: Cache,
    batch: Option<BatchWriter>,
    settings: Settings,
    /// Partitions warmed recently because a write went to them.
    warmed: moka::sync::Cache<String, ()>,
    /// Background warm-ups in flight (bounded by `preload.concurrency`), stopped by [`Store::shutdown`].
    warm_ups: Mutex<JoinSet<()>>,
}

impl Store {
    /// Builds the store; starts the scheduler's writer threads when batching is on.
    ///
    /// # Errors
    /// [`Error::Config`] for bad cache settings; [`Error::Database`] when a writer cannot start.
    pub(crate) async fn open(engine: Engine, settings: Settings) -> Result<Store> {
        let cache = Cache::new(&settings.cache, &engine)?;
        // With Redis, cached reads wait for a first look at the fence (`cache/fence.rs`).
        cache.check_fence().await;
        let batch = match settings.batch.enabled {
            true => Some(BatchWriter::start(engine.clone(), cache.clone(), &settings.batch).await?),
            false => None,
        };
        let warmed = moka::sync::Cache::builder().max_capacity(10_000).time_to_live(WARM_AGAIN_AFTER).build();
        let inner = Inner { engine, cache, batch, settings, warmed, warm_ups: Mutex::new(JoinSet::new()) };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The cache.
    pub(crate) fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The scheduler, unless batching is off.
    pub(crate) fn batch(&self) -> Option<&BatchWriter> {
        self.inner.batch.as_ref()
    }

    /// The cache's way to the database: a select on the reader pool.
    pub(crate) fn loader(&self) -> impl Fn(Select) -> BoxFuture<'static, Result<Vec<Row>>> + Send + Sync + 'static {
        let reader = self.engine().reader().clone();
        move |sel: Select| {
            let reader = reader.clone();
            Box::pin(async move { exec::select(&reader, &sel).await })
        }
    }

    /// **The read entry point.** Through the cache; it sees every write acknowledged before it began and
    /// never waits for writes other callers queued. With a `session`, it also sees that session's own
    /// pending writes (see `session.rs`): applied to the committed answer where the shape allows, else after
    /// waiting for those writes only.
    ///
    /// # Errors
    /// The database's errors on a miss.
    pub(crate) async fn read(&self, sel: &Select, session: Option<&SessionState>) -> Result<Rows> {
        let started = Instant::now();
        let load = self.loader();
        let rows = match session {
            None => self.cache().read(sel, &load).await,
            Some(s) => self.session_read(s, sel, &load).await,
        };
        self.slow("read", sel.model.name, started);
        rows
    }

    /// A session's read: its pending writes applied to the committed answer, or after them (see
    /// `session.rs`). A read whose base met a commit of the session's writes in flight is made again once
    /// they settle (a bounded number of times, then after all of them).
    async fn session_read(&self, s: &SessionState, sel: &Select, load: Loader<'_>) -> Result<Rows> {
        for _ in 0..3 {
            match s.plan(sel, self.inner.settings.cache.window_rows) {
                Plan::Plain => return self.traced(s, sel, load).await,
                Plan::Wait(answers) => {
                    for a in answers {
                        let _ = a.await;
                    }
                    return self.traced(s, sel, load).await;
                }
                Plan::Overlay(o) => {
                    let base = self.traced(s, &o.base, load).await?;
                    match o.finish(&base) {
                        Finished::Rows(rows) => return Ok(rows),
                        Finished::Ambiguous(answers) => {
                            for a in answers {
                                let _ = a.await;
                            }
                        }
                        Finished::Unprovable => break,
                    }
                }
            }
        }
        s.settle(sel.model).await;
        self.traced(s, sel, load).await
    }

    /// A cache read for a session, counting whether it went to the database.
    async fn traced(&self, s: &SessionState, sel: &Select, load: Loader<'_>) -> Result<Rows> {
        let (rows, loaded) = self.cache().read_traced(sel, load).await?;
        s.loaded(loaded);
        Ok(rows)
    }

    /// Counts the rows of `model` matching `filter` (not cached); with a `session`, after that session's own
    /// pending writes to the model.
    ///
    /// # Errors
    /// The database's errors.
    pub(crate) async fn count(
        &self,
        model: &'static ModelDef,
        filter: &Filter,
        session: Option<&SessionState>,
    ) -> Result<u64> {
        settle(session, model).await;
        exec::count(self.engine().reader(), model, filter).await
    }

    /// An aggregate of `column` (not cached); with a `session`, after that session's own pending writes to the
    /// model.
    ///
    /// # Errors
    /// The database's errors.
    pub(crate) async fn aggregate(
        &self,
        model: &'static ModelDef,
        filter: &Filter,
        agg: exec::Aggregate,
        column: usize,
        session: Option<&SessionState>,
    ) -> Result<serde_json::Value> {
        settle(session, model).await;
        exec::aggregate(self.engine().reader(), model, filter, agg, column).await
    }

    /// The distinct values of `column` (not cached); with a `session`, after its own pending writes.
    ///
    /// # Errors
    /// The database's errors.
    pub(crate) async fn distinct(
        &self,
        model: &'static ModelDef,
        filter: &Filter,
        column: usize,
        session: Option<&SessionState>,
    ) -> Result<Vec<serde_json::Value>> {
        settle(session, model).await;
        exec::distinct(self.engine().reader(), model, filter, column).await
    }

    /// **The write entry point.** Queues a validated write with `priority` (`None`: its model's default) and
    /// returns its ticket, which resolves after COMMIT. With `direct` (or batching off) the write runs now in
    /// its own transaction and the ticket comes back answered.
    ///
    /// # Errors
    /// [`Error::Overloaded`], [`Error::ShuttingDown`]; on the direct path, the write's own error.
    pub(crate) async fn submit(
        &self,
        op: WriteOp,
        priority: Option<Priority>,
        direct: bool,
        session: Option<&SessionState>,
    ) -> Result<Ticket> {
        self.admit(&op)?;
        let priority = priority.unwrap_or(op.model().priority);
        let Some(b) = self.batch().filter(|_| !direct) else {
            return Ok(Ticket::ready(self.run_direct(op).await));
        };
        let Some(s) = session else { return b.submit(op, priority, None).await };
        let (remembered, progress) = (Arc::new(op.clone()), SessionState::progress());
        let (ticket, answer) = b.submit(op, priority, Some(progress.clone())).await?.shared();
        s.remember(remembered, answer, progress);
        Ok(ticket)
    }

    /// Inserts `rows` in transactions of up to 2,000 rows on the writer (not batched with other writes), then
    /// invalidates the model's cached reads.
    ///
    /// # Errors
    /// The first failing chunk's error (earlier chunks stay committed).
    pub(crate) async fn insert_many(&self, model: &'static ModelDef, rows: Vec<NewRow>) -> Result<u64> {
        // Every row checked before any is written.
        self.check_backend(model, &rows)?;
        let mut done = 0;
        for chunk in rows.chunks(2000) {
            let chunk = Arc::new(chunk.to_vec());
            let n = chunk.len() as u64;
            let result = self
                .engine()
                .write("insert_many", move |txn| {
                    let c = chunk.clone();
                    Box::pin(async move { exec::insert_many(txn, &c).await.map(drop) })
                })
                .await;
            self.cache().publish(&[Touched { model, reach: Reach::Everything }], None).await;
            result?;
            done += n;
        }
        Ok(done)
    }

    /// Refuses rows a value of which this backend cannot hold (before anything is written).
    fn check_backend(&self, model: &'static ModelDef, rows: &[NewRow]) -> Result<()> {
        let backend = self.engine().backend();
        rows.iter().try_for_each(|r| {
            r.cells.iter().enumerate().try_for_each(|(i, c)| c.check_backend(model, model.col(i), backend))
        })
    }

    /// Inserts rows that carry their ids (copies, imports) in one transaction, skipping ids the table holds
    /// (so a repeated or resumed run adds nothing), then invalidates the model's cached reads. Returns the rows
    /// inserted.
    ///
    /// # Errors
    /// As [`exec::insert_keeping_ids`]; nothing of `rows` is written then.
    pub(crate) async fn insert_keeping_ids(&self, model: &'static ModelDef, rows: Vec<NewRow>) -> Result<u64> {
        self.check_backend(model, &rows)?;
        let rows = Arc::new(rows);
        let result = self
            .engine()
            .write("import", move |txn| {
                let rows = rows.clone();
                Box::pin(async move { exec::insert_keeping_ids(txn, &rows).await })
            })
            .await;
        self.cache().publish(&[Touched { model, reach: Reach::Everything }], None).await;
        result
    }

    /// Deletes every row of `models`' tables in one transaction, then invalidates their cached reads.
    ///
    /// # Errors
    /// [`Error::Database`] (nothing deleted then).
    pub(crate) async fn clear(&self, models: &[&'static ModelDef]) -> Result<u64> {
        let filters = models.iter().map(|m| Filter::parse(m, &serde_json::json!({}))).collect::<Result<Vec<_>>>()?;
        let jobs: Arc<Vec<(&'static ModelDef, Filter)>> = Arc::new(models.iter().copied().zip(filters).collect());
        let result = self
            .engine()
            .write("clear", move |txn| {
                let jobs = jobs.clone();
                Box::pin(async move {
                    let mut n = 0;
                    for (m, f) in jobs.iter() {
                        n += exec::delete(txn, m, f).await?;
                    }
                    Ok(n)
                })
            })
            .await;
        let touched: Vec<Touched> = models.iter().map(|&model| Touched { model, reach: Reach::Everything }).collect();
        self.cache().publish(&touched, None).await;
        result
    }

    /// Runs a write and waits for its commit: at once when nothing is queued before it, else through a batch
    /// (or, `direct`, in its own transaction).
    ///
    /// # Errors
    /// As [`Store::submit`], and the write's own error.
    pub(crate) async fn write(&self, op: WriteOp, direct: bool) -> Result<WriteOutcome> {
        let (model, started) = (op.model(), Instant::now());
        let out = match self.admit(&op) {
            Err(e) => Err(e),
            // At once on this task when its lane is idle, else through a batch (see `BatchWriter::write`).
            Ok(()) => match self.batch().filter(|_| !direct) {
                Some(b) => b.write(op, model.priority).await,
                None => self.run_direct(op).await,
            },
        };
        self.slow("write", model.name, started);
        out
    }

    /// What every write passes before it is queued or run: its parts fit its model; an insert may warm its
    /// partition.
    fn admit(&self, op: &WriteOp) -> Result<()> {
        op.check()?;
        op.check_backend(self.engine().backend())?;
        self.on_insert(op);
        Ok(())
    }

    /// One write in its own transaction: the scheduler's executor with a batch of one, then the cache's
    /// invalidation. Without write-through: direct writes of concurrent callers commit in an order nobody
    /// serialises, and replaying a write's rows onto an entry that already holds a later commit would undo
    /// it (the scheduler's lanes acknowledge in commit order, so their writes are written through).
    async fn run_direct(&self, op: WriteOp) -> Result<WriteOutcome> {
        let ops = Arc::new(vec![op]);
        let done = executor::execute(self.engine(), ops.clone(), &[]).await?;
        self.cache().publish(&merge(done.touched), None).await;
        done.results.into_iter().next().unwrap_or_else(|| Err(Error::internal("a batch of one write answered nothing")))
    }

    /// Warms a partition in the background on its first insert (per [`WARM_AGAIN_AFTER`]), for models whose
    /// registry annotation asks for it, when `preload.on_activity` is on and a warm-up slot is free; never
    /// delays the caller.
    fn on_insert(&self, op: &WriteOp) {
        let p = &self.inner.settings.preload;
        let WriteOp::Insert(row) = op else { return };
        let (true, Some(part), true, true) = (row.model.warm_on_insert, row.model.partition, p.enabled, p.on_activity)
        else {
            return;
        };
        let Cell::Text(chat) = &row.cells[part] else { return };
        if self.inner.warmed.contains_key(chat) {
            return;
        }
        let mut tasks = self.inner.warm_ups.lock().unwrap_or_else(PoisonError::into_inner);
        while tasks.try_join_next().is_some() {}
        if tasks.len() >= p.concurrency.max(1) {
            return;
        }
        self.inner.warmed.insert(chat.clone(), ());
        let (store, chat, model) = (self.clone(), chat.clone(), row.model);
        tasks.spawn(async move {
            // After the insert commits, so the warm-up sees it (and the people who wrote in the partition).
            if let Some(b) = store.batch() {
                b.wait_for(model_index(model), Some(stripe_of(&serde_json::Value::String(chat.clone())))).await;
            }
            if let Err(e) = store.preload(Some(vec![chat]), false).await {
                tracing::debug!(error = %e, "warming an active partition failed");
            }
        });
    }

    /// Warms (or with `refresh`, reloads) the cache for `chats`, or the most active ones.
    ///
    /// # Errors
    /// [`Error::Database`] when the active chats cannot be listed.
    pub(crate) async fn preload(&self, chats: Option<Vec<String>>, refresh: bool) -> Result<PreloadReport> {
        let (load, s) = (self.loader(), &self.inner.settings);
        preload::warm(self.cache(), self.engine().reader(), &s.preload, s.cache.window_rows, chats, &load, refresh)
            .await
    }

    /// Logs an operation slower than `database.slow_ms` (model, op, duration; never row contents).
    fn slow(&self, op: &'static str, model: &'static str, started: Instant) {
        let limit = self.inner.settings.database.slow_ms;
        let took = started.elapsed();
        if limit > 0 && took.as_millis() as u64 >= limit {
            tracing::warn!(model, op, duration_ms = took.as_millis() as u64, "slow operation");
        }
    }

    /// Stops the warm-ups, commits what is queued (within `batch.shutdown_timeout_ms`), stops the cache's bus.
    pub(crate) async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.inner.warm_ups.lock().unwrap_or_else(PoisonError::into_inner));
        tasks.shutdown().await;
        if let Some(b) = self.batch() {
            b.shutdown(Duration::from_millis(self.inner.settings.batch.shutdown_timeout_ms)).await;
        }
        self.cache().shutdown();
    }
}

/// Waits for `session`'s own pending writes to `model` (nothing without a session): what an uncached read
/// of a session must see.
async fn settle(session: Option<&SessionState>, model: &ModelDef) {
    if let Some(s) = session {
        s.settle(model).await;
    }
}
