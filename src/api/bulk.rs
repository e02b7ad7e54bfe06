//! Bulk writes: many rows, or many keyed updates, in one call, each item with its own outcome (the bot's
//! `executemany` of 200 messages, `UPDATE … WHERE message_id = ?` over a list, the multi-row upsert of chat
//! streams). Every item is validated on its own; the valid ones are queued together, so the batch writer
//! folds them into multi-row INSERTs, grouped UPDATEs and grouped upserts; each answers after the COMMIT
//! that holds it. A bad item fails alone (a row the database refuses is retried apart from its batch).

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::api::db::Db;
use crate::core::data::{Changes, NewRow};
use crate::core::filter::Filter;
use crate::core::registry;
use crate::core::value::Row;
use crate::optimization::batch::{Ticket, WriteOp};
use crate::utils::error::{Error, Result};

impl Db {
    /// Creates every row of `rows`; answers, per row and in order, the created row (with its id) or that
    /// row's error.
    ///
    /// # Errors
    /// [`Error::UnknownModel`] for the whole call; each row's own errors in its place.
    pub async fn create_many(&self, model: &str, rows: &[Value]) -> Result<Vec<Result<Row>>> {
        let m = registry::model(model)?;
        let mut tickets = Vec::with_capacity(rows.len());
        for data in rows {
            tickets.push(match NewRow::parse(m, data) {
                Ok(row) => self.submit_op(WriteOp::Insert(row)).await,
                Err(e) => Err(e),
            });
        }
        Ok(settle(tickets, |o| o.into_row().ok_or_else(|| Error::internal("a create answered no row"))).await)
    }

    /// Updates by key: for each `(key, data)` of `items`, the rows whose `key_field` equals `key` get
    /// `data`. Answers, per item and in order, the number of rows matched or that item's error (a `null`
    /// key is refused: it would match by `IS NULL`).
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::UnknownField`] for `key_field`, for the whole call; each item's own
    /// errors in its place.
    pub async fn update_many(
        &self,
        model: &str,
        key_field: &str,
        items: &[(Value, Value)],
    ) -> Result<Vec<Result<u64>>> {
        let m = registry::model(model)?;
        m.column_index(key_field)?;
        let mut tickets = Vec::with_capacity(items.len());
        for (key, data) in items {
            let op = if key.is_null() {
                Err(Error::InvalidRequest(format!("a null key for `{}.{key_field}` in update_many", m.name)))
            } else {
                Filter::parse(m, &json!({ key_field: key }))
                    .and_then(|filter| Ok(WriteOp::Update { filter, changes: Changes::parse(m, data)? }))
            };
            tickets.push(match op {
                Ok(op) => self.submit_op(op).await,
                Err(e) => Err(e),
            });
        }
        Ok(settle(tickets, |o| o.count().ok_or_else(|| Error::internal("an update answered no count"))).await)
    }

    /// Upserts by key, each row as [`Db::save`] does with `key_field` and the row's own value of it (the
    /// first row with that key gets every field of the row; otherwise the row is created). Answers, per
    /// row and in order, the row written or that row's error.
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::UnknownField`] for `key_field`, for the whole call; each row's own
    /// errors (a row without the key among them) in its place.
    pub async fn upsert_many(&self, model: &str, key_field: &str, rows: &[Value]) -> Result<Vec<Result<Row>>> {
        let m = registry::model(model)?;
        m.column_index(key_field)?;
        let saves = rows.iter().map(|row| async move {
            match row.get(key_field) {
                Some(key) => self.save(model, row, Some((key_field, key))).await,
                None => {
                    Err(Error::InvalidRequest(format!("a row without its key `{}.{key_field}` in upsert_many", m.name)))
                }
            }
        });
        Ok(join_all(saves).await)
    }
}

/// Awaits every ticket in order, mapping each outcome.
async fn settle<T>(tickets: Vec<Result<Ticket>>, map: impl Fn(crate::WriteOutcome) -> Result<T>) -> Vec<Result<T>> {
    let mut out = Vec::with_capacity(tickets.len());
    for t in tickets {
        out.push(match t {
            Ok(ticket) => ticket.await.and_then(&map),
            Err(e) => Err(e),
        });
    }
    out
}
