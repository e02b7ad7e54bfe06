//! Recent-history windows: a chat's latest rows, cached as one entry, answer the reads of its recent history
//! (equality on the partition, a moving `time <` bound, newest first, a limit within the window).

use std::sync::Arc;

use serde_json::Value;

use crate::core::exec::Select;
use crate::core::filter::Op;
use crate::core::value::{Row, Rows};

/// A recent-history read that a partition window can answer: equality on the partition column, optional
/// range conditions on one column `c`, order `-c`, a limit within the window or none (then answered when the
/// window provably holds every matching row: the whole partition, or a row below the range's lower bound).
#[derive(Debug, Clone)]
pub(crate) struct WindowRead {
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
    pub(crate) fn column(&self) -> usize {
        self.column
    }

    /// Recognises the shape, or `None`.
    pub(crate) fn of(sel: &Select, window_rows: u64) -> Option<WindowRead> {
        let p = sel.model.partition?;
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
        if !sel.filter.is_flat() || sel.offset > 0 {
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
            offset: 0,
        };
        Some(WindowRead { window, column, bounds, limit })
    }

    /// Answers from the window's rows, or `None` when the window cannot prove it holds every wanted row.
    pub(crate) fn answer(&self, rows: &Rows, window_rows: u64) -> Option<Rows> {
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
