//! What the cache keys reads by: the partition column of each model (a chat, a person, …), the scope of a
//! read and the reach of a write, and the recent-history window shape.

use std::sync::Arc;

use serde_json::Value;

use crate::core::data::Changes;
use crate::core::exec::{self, Select};
use crate::core::filter::{Filter, Op};
use crate::core::registry::{ModelDef, model_index};
use crate::core::value::{Row, Rows};
use crate::utils::error::Result;

use super::generations::{Field, stripe_of};

/// The column whose equality scopes a read to one partition, per model.
pub fn partition_column(model: &ModelDef) -> Option<usize> {
    let col = match model.name {
        "Messages" | "ActionRecords" | "Expression" | "ThinkingLog" => "chat_id",
        "ChatStreams" => "stream_id",
        "PersonInfo" => "person_id",
        "UserRelationships" | "LLMUsage" => "user_id",
        "Images" | "Emoji" => "emoji_hash",
        _ => return None,
    };
    model.column_index(col).ok()
}

/// The generation field a read depends on besides `all`.
pub fn read_scope(sel: &Select) -> Field {
    partition_column(sel.model)
        .and_then(|p| sel.filter.eq_value(p))
        .map_or(Field::Any, |cell| Field::Stripe(stripe_of(&cell.to_json())))
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

impl Touched {
    /// The generation fields to bump, with the model's index.
    pub fn fields(&self) -> (usize, Vec<Field>) {
        let idx = model_index(self.model);
        let fields = match &self.reach {
            Reach::Everything => vec![Field::All],
            Reach::Partitions(vs) => {
                let mut f: Vec<Field> = vs.iter().map(|v| Field::Stripe(stripe_of(v))).collect();
                f.sort_by_key(|f| f.name());
                f.dedup();
                f.push(Field::Any);
                f
            }
        };
        (idx, fields)
    }
}

/// A recent-history read that a partition window can answer: equality on the partition column, optional
/// range conditions on one column `c`, order `-c`, a limit within the window or none (then answered when the
/// window provably holds every matching row: the whole partition, or a row below the range's lower bound).
#[derive(Debug, Clone)]
pub struct WindowRead {
    /// The window: the partition's latest rows by `-c` (then id), `window_rows` of them.
    pub window: Select,
    /// The order column.
    column: usize,
    /// Range conditions on it: (op, value as JSON).
    bounds: Vec<(Op, Value)>,
    /// Rows wanted (`None`: all that match).
    limit: Option<usize>,
}

impl WindowRead {
    /// The window's order column.
    pub fn column(&self) -> usize {
        self.column
    }

    /// Recognises the shape, or `None`.
    pub fn of(sel: &Select, window_rows: u64) -> Option<WindowRead> {
        let p = partition_column(sel.model)?;
        let limit = match sel.limit {
            Some(l) if l <= window_rows => Some(l as usize),
            Some(_) => return None,
            None => None,
        };
        let [(column, true)] = sel.order.as_slice() else { return None };
        let column = *column;
        if column == p {
            return None;
        }
        let part = sel.filter.eq_value(p)?.clone();
        let mut bounds = vec![];
        for c in &sel.filter.conds {
            match (c.column, c.op) {
                (col, Op::Eq) if col == p => {}
                (col, Op::Lt | Op::Lte | Op::Gt | Op::Gte) if col == column => {
                    bounds.push((c.op, c.values[0].to_json()));
                }
                _ => return None,
            }
        }
        let window = Select {
            model: sel.model,
            filter: crate::core::filter::Filter::all().and_eq(p, part),
            order: vec![(column, true)],
            limit: Some(window_rows),
        };
        Some(WindowRead { window, column, bounds, limit })
    }

    /// Answers from the window's rows, or `None` when the window cannot prove it holds every wanted row.
    pub fn answer(&self, rows: &Rows, window_rows: u64) -> Option<Rows> {
        let name = self.window.model.col(self.column).name;
        let mut out: Vec<Arc<Row>> = Vec::with_capacity(self.limit.unwrap_or(8));
        let mut below = false;
        for r in rows.iter() {
            if Some(out.len()) == self.limit {
                break;
            }
            let v = r.get(name).unwrap_or(&Value::Null);
            if self.bounds.iter().all(|(op, b)| satisfies(v, *op, b)) {
                out.push(r.clone());
            } else if self.bounds.iter().any(|(op, b)| {
                matches!(op, Op::Gt | Op::Gte)
                    && b.is_number()
                    && (v.is_null() || v.is_number())
                    && !satisfies(v, *op, b)
            }) {
                // Below a numeric lower bound: every later row (smaller, or NULL: NULL sorts last) is too.
                // (Text order is the database's collation, which byte order need not match.)
                below = true;
                break;
            }
        }
        // Rows matching the bounds form one run of the window's order; the window holds all the wanted
        // ones when it filled the limit, reached below the range, or is the whole partition.
        (Some(out.len()) == self.limit || below || (rows.len() as u64) < window_rows).then(|| out.into())
    }
}

fn satisfies(v: &Value, op: Op, bound: &Value) -> bool {
    let (Some(a), Some(b)) = (v.as_f64(), bound.as_f64()) else {
        // Text bounds (or NULL): compare as SQL would, byte-wise; NULL matches nothing.
        return match (v.as_str(), bound.as_str()) {
            (Some(a), Some(b)) => cmp_ok(a.as_bytes().cmp(b.as_bytes()), op),
            _ => false,
        };
    };
    a.partial_cmp(&b).is_some_and(|o| cmp_ok(o, op))
}

fn cmp_ok(o: std::cmp::Ordering, op: Op) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Lt => o == Less,
        Op::Lte => o != Greater,
        Op::Gt => o == Greater,
        Op::Gte => o != Less,
        _ => false,
    }
}

/// The reach of an inserted row: its partition, or everything for a model without one.
pub fn inserted(model: &'static ModelDef, row: &Row) -> Touched {
    let reach = match partition_column(model) {
        Some(p) => Reach::Partitions(vec![row.get(model.col(p).name).cloned().unwrap_or(Value::Null)]),
        None => Reach::Everything,
    };
    Touched { model, reach }
}

/// Partitions an update or delete will touch (call inside its transaction, before it runs), learned inside its transaction (at most 64, else everything).
pub async fn reach_of<C: sea_orm::ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    filter: &Filter,
    changes: Option<&Changes>,
) -> Result<Reach> {
    let Some(p) = partition_column(model) else { return Ok(Reach::Everything) };
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
