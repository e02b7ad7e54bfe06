//! Partitions: a model's partition column (its registry annotation: the chat of a message, the person of a
//! `PersonInfo` row, …) scopes reads and writes. A partition value hashes to one of [`STRIPES`] stripes;
//! the cache keys a read by its stripe's generation, the scheduler tells which pending writes a read could
//! see by stripe, and a committed write reports what it touched as a [`Reach`]. One module for the cache and
//! the batch writer alike.

use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::Value;

use crate::core::data::Changes;
use crate::core::exec::{self, Select};
use crate::core::filter::Filter;
use crate::core::registry::ModelDef;
use crate::core::value::Row;
use crate::optimization::batch::WriteOp;
use crate::utils::error::Result;
use crate::utils::stable_hash::hash64;

/// Partition stripes per model. Partitions sharing a stripe invalidate each other's entries: with 256
/// stripes, 200 chats collided so often that every batch orphaned a dozen chats' recent-history windows
/// (about 185 KB each) and the churn evicted live entries; with 4096 about 5 % of 200 chats share one.
pub(crate) const STRIPES: usize = 4096;
/// The stripe of a partition value (its number is shared through Redis: a stable hash).
pub(crate) fn stripe_of(value: &Value) -> usize {
    let h = match value {
        Value::String(s) => hash64(s.as_bytes()),
        other => hash64(other.to_string().as_bytes()),
    };
    (h % STRIPES as u64) as usize
}

/// The stripe a read is scoped to: equality on its model's partition column, else none (the whole model).
pub(crate) fn read_stripe(sel: &Select) -> Option<usize> {
    let p = sel.model.partition?;
    sel.filter.eq_value(p).map(|cell| stripe_of(&cell.to_json()))
}

/// The partition stripe a write is known to touch at submit time.
pub(crate) fn write_stripe(op: &WriteOp) -> Option<usize> {
    let p = op.model().partition?;
    let cell = match op {
        WriteOp::Insert(r) => Some(&r.cells[p]),
        WriteOp::Save { key, .. } => key.eq_value(p),
        WriteOp::Update { filter, changes } => {
            // Moving rows to another partition touches two: treat as unknown.
            if changes.sets.iter().any(|(i, _)| *i == p) { None } else { filter.eq_value(p) }
        }
        WriteOp::Delete { filter, .. } | WriteOp::Increment { filter, .. } => filter.eq_value(p),
    }?;
    Some(stripe_of(&cell.to_json()))
}

/// What a committed write may have changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reach {
    /// Rows of these partition values (and nothing else).
    Partitions(Vec<Value>),
    /// Anything in the model.
    Everything,
}

/// A committed write's effect on one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Touched {
    /// The model written.
    pub model: &'static ModelDef,
    /// What it may have changed.
    pub reach: Reach,
}

/// The reach of an inserted row: its partition, or everything for a model without one.
pub(crate) fn inserted(model: &'static ModelDef, row: &Row) -> Touched {
    let reach = match model.partition {
        Some(p) => Reach::Partitions(vec![row.get(model.col(p).name).cloned().unwrap_or(Value::Null)]),
        None => Reach::Everything,
    };
    Touched { model, reach }
}

/// Partitions an update or delete will touch (call inside its transaction, before it runs), learned inside its transaction (at most 64, else everything).
pub(crate) async fn reach_of<C: sea_orm::ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    filter: &Filter,
    changes: Option<&Changes>,
) -> Result<Reach> {
    let Some(p) = model.partition else { return Ok(Reach::Everything) };
    let mut values = match filter.eq_value(p) {
        Some(v) => vec![v.to_json()],
        None => match exec::distinct_values(conn, model, p, filter, 64).await? {
            Some(vs) => vs,
            None => return Ok(Reach::Everything),
        },
    };
    if let Some(c) = changes.and_then(|c| c.sets.iter().find(|(i, _)| *i == p)) {
        values.push(c.1.to_json());
    }
    Ok(Reach::Partitions(values))
}

/// The partition column to learn through `RETURNING` (SQLite, PostgreSQL) when the filter does not name
/// the partition itself; `None` where a separate look-up (or nothing) is needed.
pub(crate) fn returning_partition<C: ConnectionTrait>(
    c: &C,
    model: &'static ModelDef,
    filter: &Filter,
) -> Option<usize> {
    let p = model.partition?;
    (c.get_database_backend() != DbBackend::MySql && filter.eq_value(p).is_none()).then_some(p)
}

/// The reach of an update from the partition values it returned (and the new value, if it moved rows).
pub(crate) fn reach_from(
    model: &'static ModelDef,
    p: usize,
    values: Option<Vec<Value>>,
    changes: Option<&Changes>,
) -> Touched {
    let reach = match values {
        None => Reach::Everything,
        Some(mut vs) => {
            // RETURNING gives the new values; a moved row's old partition is unknown: everything.
            if changes.is_some_and(|c| c.sets.iter().any(|(i, _)| *i == p)) {
                return Touched { model, reach: Reach::Everything };
            }
            vs.dedup();
            Reach::Partitions(vs)
        }
    };
    Touched { model, reach }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::model;

    /// Stripe numbers are shared through Redis: pinned, so a change shows up here first.
    #[test]
    fn stripes_are_stable_and_reads_find_theirs() {
        assert_eq!(stripe_of(&Value::String("chat-1".into())), 744);
        let m = model("Messages").unwrap();
        let sel = Select::parse(m, &serde_json::json!({"chat_id": "chat-1"}), &["-time".into()], Some(8)).unwrap();
        assert_eq!(read_stripe(&sel), Some(744));
        let any = Select::parse(m, &serde_json::json!({"message_id": "x"}), &[], Some(1)).unwrap();
        assert_eq!(read_stripe(&any), None);
    }
}
