//! Sessions: read-your-writes for one logical caller (the handler of one message, one chat's loop), without
//! waiting for anybody else. A session remembers the writes it submitted until they are settled (their
//! tickets answered). Its reads:
//!
//! - with none of its own writes to the model pending: a plain read (which sees every write acknowledged
//!   before it began, and waits for nothing);
//! - a recent-history window read or a point read by a unique key, when its pending writes to the model are
//!   inserts and updates by a key: the committed (cached) answer with those writes applied, without waiting;
//! - any other read: waits for the session's own pending writes to that model only, then reads.
//!
//! A pending write that fails disappears from the view (its ticket reports the error). Rows of pending
//! inserts carry `id: null` until they commit.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use crate::core::exec::Select;
use crate::core::filter::{Filter, Op};
use crate::core::registry::ModelDef;
use crate::core::value::{Row, Rows};
use crate::optimization::batch::{SharedAnswer, WriteOp};
use crate::optimization::cache::carry::{Column, Draft};
use crate::optimization::cache::window::WindowRead;

/// A write the session submitted, until its ticket is answered.
#[derive(Debug)]
struct PendingWrite {
    op: Arc<WriteOp>,
    answer: SharedAnswer,
}

/// What one session has in flight. Cheap to clone (an `Arc` inside).
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionState {
    pending: Arc<Mutex<Vec<PendingWrite>>>,
}

/// How a session answers a read.
pub(crate) enum Plan {
    /// A plain read: nothing of the session's is pending on the model.
    Plain,
    /// The committed answer of `base` with the pending writes applied, then `finish` picks the answer.
    Overlay(Overlay),
    /// Wait for these pending writes of the session, then read plainly.
    Wait(Vec<SharedAnswer>),
}

/// A read answered from a committed base with the session's pending writes applied.
pub(crate) struct Overlay {
    /// The committed read to start from (a window, or the point read itself).
    pub(crate) base: Select,
    shape: Shape,
    writes: Vec<Arc<WriteOp>>,
}

enum Shape {
    Window(WindowRead, u64),
    /// A point read: `(column, value)` equality on a unique column, and the read's limit.
    Point(Column, Value, Option<u64>),
}

impl SessionState {
    /// Remembers a submitted write until `answer` resolves.
    pub(crate) fn remember(&self, op: Arc<WriteOp>, answer: SharedAnswer) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| p.answer.peek().is_none());
        pending.push(PendingWrite { op, answer });
    }

    /// The session's unsettled writes to `model`, in submission order.
    fn pending_to(&self, model: &ModelDef) -> Vec<(Arc<WriteOp>, SharedAnswer)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| p.answer.peek().is_none());
        pending.iter().filter(|p| p.op.model() == model).map(|p| (p.op.clone(), p.answer.clone())).collect()
    }

    /// Waits until every write to `model` submitted through this session so far is settled.
    pub(crate) async fn settle(&self, model: &ModelDef) {
        for (_, answer) in self.pending_to(model) {
            let _ = answer.await;
        }
    }

    /// How to answer `sel` for this session.
    pub(crate) fn plan(&self, sel: &Select, window_rows: u64) -> Plan {
        let pending = self.pending_to(sel.model);
        if pending.is_empty() {
            return Plan::Plain;
        }
        let replayable = pending.iter().all(|(op, _)| replayable(op).is_some());
        let shape = if replayable { shape_of(sel, window_rows) } else { None };
        match shape {
            Some((base, shape)) => {
                Plan::Overlay(Overlay { base, shape, writes: pending.into_iter().map(|(op, _)| op).collect() })
            }
            None => Plan::Wait(pending.into_iter().map(|(_, a)| a).collect()),
        }
    }
}

/// An insert, or an update whose filter is one equality on a column that it leaves alone (so the rows it
/// changes are found by that key): what a view can replay. Returns the update's key.
fn replayable(op: &WriteOp) -> Option<Option<(usize, Value)>> {
    match op {
        WriteOp::Insert(_) => Some(None),
        WriteOp::Update { filter, changes } => {
            let (col, value) = single_eq(filter)?;
            let p = changes.model.partition;
            let moves = changes.sets.iter().any(|(i, _)| Some(*i) == p || *i == col);
            (!moves).then_some(Some((col, value)))
        }
        _ => None,
    }
}

/// The one equality of a filter of one condition.
fn single_eq(filter: &Filter) -> Option<(usize, Value)> {
    match filter.conds.as_slice() {
        [c] if c.op == Op::Eq => Some((c.column, c.values[0].to_json())),
        _ => None,
    }
}

/// The base read and shape of a read a view can answer: a recent-history window read, or a point read by a
/// unique column.
fn shape_of(sel: &Select, window_rows: u64) -> Option<(Select, Shape)> {
    if let Some(w) = WindowRead::of(sel, window_rows) {
        return Some((w.window.clone(), Shape::Window(w, window_rows)));
    }
    let (col, value) = single_eq(&sel.filter)?;
    sel.model.col(col).unique.then(|| (sel.clone(), Shape::Point((col, sel.model.col(col).name), value, sel.limit)))
}

impl Overlay {
    /// The answer: `committed` (the base's rows) with the pending writes applied. `None` when the window
    /// cannot prove it holds every wanted row (the caller then waits and reads plainly).
    pub(crate) fn finish(&self, committed: &Rows) -> Option<Rows> {
        let model = self.base.model;
        let order = match &self.shape {
            Shape::Window(w, _) => w.column(),
            Shape::Point(..) => 0,
        };
        let mut draft = Draft::of(committed, (order, model.col(order).name));
        for op in &self.writes {
            match (op.as_ref(), replayable(op)) {
                (WriteOp::Insert(r), _) if self.admits(r.model, &r.to_row(0)) => {
                    let mut row = r.to_row(0);
                    row.insert("id".into(), r.explicit_id().map_or(Value::Null, Value::from));
                    draft.insert_pending(&Arc::new(row));
                }
                (WriteOp::Update { changes, .. }, Some(Some((col, value)))) => {
                    draft.update((col, model.col(col).name), &value, changes);
                }
                _ => {}
            }
        }
        match &self.shape {
            Shape::Window(w, window_rows) => {
                let rows = draft.finish(usize::MAX);
                // The committed window held the whole partition iff it was not full: pending rows added
                // on top do not change that.
                let added = rows.len().saturating_sub(committed.len()) as u64;
                w.answer(&rows, *window_rows + added)
            }
            Shape::Point((idx, name), value, limit) => {
                let rows: Vec<Arc<Row>> = draft
                    .finish(usize::MAX)
                    .iter()
                    .filter(|r| r.get(*name).or_else(|| r.values().nth(*idx)) == Some(value))
                    .take(limit.map_or(usize::MAX, |l| l as usize))
                    .cloned()
                    .collect();
                Some(rows.into())
            }
        }
    }

    /// Whether an inserted row belongs in the base read (its partition, or its key).
    fn admits(&self, model: &ModelDef, row: &Row) -> bool {
        let eq = |filter: &Filter| {
            filter.conds.iter().all(|c| {
                c.op == Op::Eq && row.get(model.col(c.column).name) == Some(&c.values[0].to_json())
            })
        };
        eq(&self.base.filter)
    }
}
