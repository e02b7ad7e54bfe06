//! Writes that hand back their ticket instead of waiting for it: `submit_create`, `submit_update`,
//! `submit_increment`. Validation happens at once (a bad write is an error here, before anything is
//! queued); the ticket resolves after the transaction holding the write committed, exactly as the awaited
//! forms do. A caller's writes to one model are applied in submission order (one writer lane per model), so a
//! message handler can submit "insert the message, then update it" back to back and await both at the end;
//! reads in between wait for the pending writes they could see (read-your-writes).

use serde_json::Value;

use crate::api::db::Db;
use crate::core::data::{Changes, NewRow};
use crate::core::filter::Filter;
use crate::core::registry;
use crate::optimization::batch::{Ticket, WriteOp};
use crate::utils::error::Result;

impl Db {
    /// Queues a create; the ticket answers the row with its id once committed.
    ///
    /// # Errors
    /// Validation errors (as [`Db::create`]) at once; [`crate::Error::Overloaded`] or
    /// [`crate::Error::ShuttingDown`] when the write cannot be queued.
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(db: botdb::Db, msg: serde_json::Value) -> botdb::Result<()> {
    /// let insert = db.submit_create("Messages", &msg).await?;
    /// let update = db
    ///     .submit_update("Messages", &serde_json::json!({"message_id": msg["message_id"]}),
    ///         &serde_json::json!({"interest_value": 0.8}))
    ///     .await?;
    /// let row = insert.await?.into_row();
    /// let matched = update.await?.count();
    /// # Ok(()) }
    /// ```
    pub async fn submit_create(&self, model: &str, data: &Value) -> Result<Ticket> {
        let m = registry::model(model)?;
        self.submit_op(WriteOp::Insert(NewRow::parse(m, data)?)).await
    }

    /// Queues an update; the ticket answers the number of rows matched once committed.
    ///
    /// # Errors
    /// As [`Db::submit_create`].
    pub async fn submit_update(&self, model: &str, filters: &Value, data: &Value) -> Result<Ticket> {
        let m = registry::model(model)?;
        let filter = Filter::parse(m, filters)?;
        self.submit_op(WriteOp::Update { filter, changes: Changes::parse(m, data)? }).await
    }

    /// Queues a delete; the ticket answers the number of rows deleted once committed.
    ///
    /// # Errors
    /// As [`Db::submit_create`].
    pub async fn submit_delete(&self, model: &str, filters: &Value) -> Result<Ticket> {
        let m = registry::model(model)?;
        self.submit_op(WriteOp::Delete { model: m, filter: Filter::parse(m, filters)? }).await
    }

    /// Queues `field = field + delta`; the ticket answers the number of rows matched once committed.
    ///
    /// # Errors
    /// As [`Db::increment`], at once.
    pub async fn submit_increment(&self, model: &str, filters: &Value, field: &str, delta: &Value) -> Result<Ticket> {
        let op = self.increment_op(model, filters, field, delta)?;
        self.submit_op(op).await
    }

    /// Queues a validated write with its model's default priority (without the scheduler, runs it now and
    /// hands back an answered ticket).
    pub(crate) async fn submit_op(&self, op: WriteOp) -> Result<Ticket> {
        self.store().submit(op, None, self.is_direct(), self.session_state()).await
    }
}
