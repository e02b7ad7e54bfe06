//! Explicit transactions for read-modify-write (the bot's permission manager, schedules and relationships:
//! read a row, change it, commit): `db.transaction(|tx| Box::pin(async move { … }))`. The work runs in one
//! database transaction on botdb's writer (on SQLite `BEGIN IMMEDIATE` on the one writer connection, so it is
//! serialised with the batch writer; on PostgreSQL and MySQL the rows it reads are locked with
//! `SELECT … FOR UPDATE` until COMMIT, so two read-modify-writes of one row do not lose an update). A busy or
//! deadlocked attempt is rolled back and run again (the closure may run more than once); an error returned by
//! the work rolls everything back. After COMMIT every model it wrote is invalidated in the cache, here and
//! through Redis, as a batch's writes are; reads inside see the transaction's own writes (they go to the
//! database, past the cache). The work may take at most [`TRANSACTION_LIMIT`]; past it, it is rolled back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use serde_json::Value;

use crate::api::db::Db;
use crate::core::data::{Changes, NewRow};
use crate::core::exec::{self, Select};
use crate::core::filter::Filter;
use crate::core::registry::{self, ModelDef};
use crate::core::value::Row;
use crate::optimization::partition::{Reach, Touched};
use crate::utils::error::{Error, Result};

/// How long a transaction's work may take before it is rolled back.
pub const TRANSACTION_LIMIT: Duration = Duration::from_secs(30);

/// The name-based calls inside a transaction (see the module docs).
#[derive(Clone)]
pub struct Tx<'c> {
    txn: &'c DatabaseTransaction,
    written: Arc<Mutex<Vec<&'static ModelDef>>>,
}

impl Tx<'_> {
    /// Rows matching `filters`, as [`Db::find`] takes them; on PostgreSQL and MySQL locked until COMMIT.
    ///
    /// # Errors
    /// As [`Db::find`].
    pub async fn find(&self, model: &str, filters: &Value, order_by: &[&str], limit: Option<u64>) -> Result<Vec<Row>> {
        let m = registry::model(model)?;
        let order: Vec<String> = order_by.iter().map(|s| (*s).to_owned()).collect();
        exec::select_for_update(self.txn, &Select::parse(m, filters, &order, limit)?).await
    }

    /// The first row matching `filters`, if any (locked as [`Tx::find`] locks).
    ///
    /// # Errors
    /// As [`Db::find`].
    pub async fn find_one(&self, model: &str, filters: &Value) -> Result<Option<Row>> {
        Ok(self.find(model, filters, &[], Some(1)).await?.into_iter().next())
    }

    /// Creates a row and returns it with its id.
    ///
    /// # Errors
    /// As [`Db::create`].
    pub async fn create(&self, model: &str, data: &Value) -> Result<Row> {
        let m = registry::model(model)?;
        let row = NewRow::parse(m, data)?;
        self.wrote(m);
        exec::insert(self.txn, &row).await
    }

    /// Applies `data` to the rows matching `filters`; answers how many matched.
    ///
    /// # Errors
    /// As [`Db::update`].
    pub async fn update(&self, model: &str, filters: &Value, data: &Value) -> Result<u64> {
        let m = registry::model(model)?;
        let (filter, changes) = (Filter::parse(m, filters)?, Changes::parse(m, data)?);
        self.wrote(m);
        exec::update(self.txn, &filter, &changes).await
    }

    /// Deletes the rows matching `filters`; answers how many.
    ///
    /// # Errors
    /// As [`Db::delete`].
    pub async fn delete(&self, model: &str, filters: &Value) -> Result<u64> {
        let m = registry::model(model)?;
        let filter = Filter::parse(m, filters)?;
        self.wrote(m);
        exec::delete(self.txn, m, &filter).await
    }

    fn wrote(&self, model: &'static ModelDef) {
        let mut w = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if !w.contains(&model) {
            w.push(model);
        }
    }
}

impl Db {
    /// Runs `work` in one transaction and commits it (see the module docs of `transaction.rs`); a
    /// session's own pending writes are committed first, so the work sees them.
    ///
    /// # Errors
    /// The work's own error (everything rolled back); [`Error::Busy`] when retries ran out;
    /// [`Error::InvalidRequest`] when the work took longer than [`TRANSACTION_LIMIT`] (rolled back);
    /// [`Error::Indeterminate`] when COMMIT itself failed.
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(db: botdb::Db) -> botdb::Result<()> {
    /// use serde_json::json;
    /// let score = db
    ///     .transaction(|tx| Box::pin(async move {
    ///         let row = tx.find_one("UserRelationships", &json!({"user_id": "42"})).await?;
    ///         let score = row.and_then(|r| r["relationship_score"].as_f64()).unwrap_or(0.0) + 0.1;
    ///         tx.update("UserRelationships", &json!({"user_id": "42"}), &json!({"relationship_score": score})).await?;
    ///         Ok(score)
    ///     }))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(Tx<'t>) -> BoxFuture<'t, Result<T>> + Send + Sync,
    {
        if self.session_state().is_some() {
            for m in registry::models() {
                if let Some(s) = self.session_state() {
                    s.settle(m).await;
                }
            }
        }
        let written: Arc<Mutex<Vec<&'static ModelDef>>> = Arc::default();
        let result = self
            .engine()
            .write("transaction", |txn| {
                let tx = Tx { txn, written: written.clone() };
                let run = work(tx);
                Box::pin(async move {
                    tokio::time::timeout(TRANSACTION_LIMIT, run).await.map_err(|_| {
                        Error::InvalidRequest(format!(
                            "the transaction's work took longer than {} s; rolled back",
                            TRANSACTION_LIMIT.as_secs()
                        ))
                    })?
                })
            })
            .await;
        // After COMMIT, or after a failure whose effect is unknown (an indeterminate COMMIT): forget what it
        // may have written. After a rollback this only costs a few misses.
        let models = std::mem::take(&mut *written.lock().unwrap_or_else(PoisonError::into_inner));
        let touched: Vec<Touched> =
            models.into_iter().map(|model| Touched { model, reach: Reach::Everything }).collect();
        if !touched.is_empty() {
            self.cache().publish(&touched, None).await;
        }
        result
    }
}
