//! Sessions: read-your-writes for one logical caller (the handler of one message, one chat's loop), without
//! waiting for anybody else. A session remembers the writes it submitted, with their progress, until their
//! tickets are answered. Its reads:
//!
//! - with none of its own writes to the model pending: a plain read (it sees every write acknowledged
//!   before it began, and waits for nothing);
//! - otherwise the committed (cached) answer with its pending writes applied, without waiting, when the
//!   read's shape allows it: a recent-history window, a point read by a unique key, or a filtered read whose
//!   conditions botdb can evaluate, with pending inserts, and updates, increments and deletes by a key;
//! - any other read waits for the session's own pending writes to that model only, then reads.
//!
//! Exactness: a write's [`Stage`] says whether a committed answer can hold it. One that was queued from
//! before the committed read until after it is applied; one already published is in the answer; one whose
//! COMMIT was under way meanwhile may or may not be: it is replayed where replaying is idempotent (an
//! insert is skipped when its row, id aside, is there), and for an increment the read is made again once
//! it settles (it is about to).
//! A pending write that fails disappears from the view (its ticket reports the error). Rows of pending
//! inserts carry `id: null` until they commit.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use crate::core::exec::Select;
use crate::core::filter::{Filter, Op, Predicate};
use crate::core::registry::{Kind, ModelDef};
use crate::core::value::{Cell, Row, Rows};
use crate::optimization::batch::{Progress, SharedAnswer, Stage, WriteOp};
use crate::optimization::cache::window::WindowRead;

/// A write the session submitted, until its ticket is answered.
#[derive(Debug, Clone)]
struct PendingWrite {
    op: Arc<WriteOp>,
    answer: SharedAnswer,
    progress: Arc<Progress>,
}

/// What one session has in flight. Cheap to clone (an `Arc` inside).
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionState {
    pending: Arc<Mutex<Vec<PendingWrite>>>,
    /// Reads of this session that went to the database.
    loads: Arc<std::sync::atomic::AtomicU64>,
}

/// How a session answers a read.
pub(crate) enum Plan {
    /// A plain read: nothing of the session's is pending on the model.
    Plain,
    /// The committed answer of the overlay's base with the pending writes applied.
    Overlay(Box<Overlay>),
    /// Wait for these pending writes of the session, then read plainly.
    Wait(Vec<SharedAnswer>),
}

/// What [`Overlay::finish`] found.
pub(crate) enum Finished {
    /// The answer.
    Rows(Rows),
    /// These writes were committing while the base was read: wait for them, then plan again.
    Ambiguous(Vec<SharedAnswer>),
    /// The base cannot prove it holds every wanted row: wait for the session's writes, then read plainly.
    Unprovable,
}

/// A read answered from a committed base with the session's pending writes applied.
pub(crate) struct Overlay {
    /// The committed read to start from (a window, or the read itself).
    pub(crate) base: Select,
    read: Select,
    shape: Shape,
    /// The pending writes to the model, with their stage before the base was read.
    writes: Vec<(PendingWrite, Stage)>,
}

enum Shape {
    /// A recent-history read answered from its partition's window.
    Window(WindowRead, u64),
    /// The read itself, re-filtered and re-ordered after the edits.
    Read,
}

impl SessionState {
    /// Counts a read of this session that went to the database.
    pub(crate) fn loaded(&self, yes: bool) {
        if yes {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Reads of this session that went to the database so far.
    pub(crate) fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A progress handle for a write about to be submitted.
    pub(crate) fn progress() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// Remembers a submitted write until its answer resolves.
    pub(crate) fn remember(&self, op: Arc<WriteOp>, answer: SharedAnswer, progress: Arc<Progress>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| p.answer.peek().is_none());
        pending.push(PendingWrite { op, answer, progress });
    }

    /// The session's unanswered writes to `model`, in submission order.
    fn pending_to(&self, model: &ModelDef) -> Vec<PendingWrite> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| p.answer.peek().is_none());
        pending.iter().filter(|p| p.op.model() == model).cloned().collect()
    }

    /// Waits until every write to `model` submitted through this session so far is answered.
    pub(crate) async fn settle(&self, model: &ModelDef) {
        for p in self.pending_to(model) {
            let _ = p.answer.await;
        }
    }

    /// How to answer `sel` for this session.
    pub(crate) fn plan(&self, sel: &Select, window_rows: u64) -> Plan {
        let pending = self.pending_to(sel.model);
        if pending.is_empty() {
            return Plan::Plain;
        }
        let shape = if let Some(w) = WindowRead::of(sel, window_rows) {
            let p = sel.model.partition;
            let ok = pending.iter().all(|x| edit_of(&x.op).is_some_and(|e| e.fits_window(w.column(), p)));
            ok.then(|| (w.window.clone(), Shape::Window(w, window_rows)))
        } else {
            let ok = pending.iter().all(|p| edit_of(&p.op).is_some_and(|e| e.fits_read(sel)));
            ok.then(|| (sel.clone(), Shape::Read))
        };
        match shape {
            Some((base, shape)) => {
                let writes = pending.into_iter().map(|p| (p.progress.stage(), p)).map(|(st, p)| (p, st)).collect();
                Plan::Overlay(Box::new(Overlay { base, read: sel.clone(), shape, writes }))
            }
            None => Plan::Wait(pending.into_iter().map(|p| p.answer).collect()),
        }
    }
}

/// A pending write as an edit of rows already read.
enum Edit<'a> {
    Insert(Row),
    /// Set `changes` on the rows whose `key` column equals `value`.
    Update {
        key: (usize, Value),
        sets: Vec<(usize, Value)>,
    },
    /// Add `delta` to `column` of the rows whose `key` column equals `value`.
    Increment {
        key: (usize, Value),
        column: usize,
        delta: &'a Cell,
    },
    /// Remove the rows whose `key` column equals `value`.
    Delete {
        key: (usize, Value),
    },
}

/// The edit a pending write makes, when its rows are found by one key equality.
fn edit_of(op: &WriteOp) -> Option<Edit<'_>> {
    Some(match op {
        WriteOp::Insert(r) => {
            let mut row = r.to_row(0);
            row.insert("id".into(), r.explicit_id().map_or(Value::Null, Value::from));
            Edit::Insert(row)
        }
        // Applied in submission order, an update may change its own key (later writes find the row by the
        // new one).
        WriteOp::Update { filter, changes } => Edit::Update {
            key: single_eq(filter)?,
            sets: changes.sets.iter().map(|(i, c)| (*i, c.to_json())).collect(),
        },
        WriteOp::Increment { filter, column, delta, .. } => {
            let key = single_eq(filter)?;
            (key.0 != *column).then_some(Edit::Increment { key, column: *column, delta })?
        }
        WriteOp::Delete { filter, .. } => Edit::Delete { key: single_eq(filter)? },
        WriteOp::Save { .. } => return None,
    })
}

impl Edit<'_> {
    /// The columns it changes (none for inserts and deletes).
    fn changed(&self) -> Vec<usize> {
        match self {
            Edit::Update { sets, .. } => sets.iter().map(|(i, _)| *i).collect(),
            Edit::Increment { column, .. } => vec![*column],
            Edit::Insert(_) | Edit::Delete { .. } => vec![],
        }
    }

    /// Replayable on a partition window ordered by `order`: the id, order and partition columns stay put.
    fn fits_window(&self, order: usize, partition: Option<usize>) -> bool {
        self.changed().iter().all(|c| *c != order && *c != 0 && Some(*c) != partition)
    }

    /// Replayable on the read itself: membership and order decided by columns it leaves alone; inserted rows
    /// evaluable against the filter.
    fn fits_read(&self, sel: &Select) -> bool {
        // A nested filter's membership is the database's to decide: the read waits for the writes.
        if !sel.filter.is_flat() || sel.offset > 0 {
            return false;
        }
        let watched: Vec<usize> =
            sel.filter.conds.iter().map(|c| c.column).chain(sel.order.iter().map(|(c, _)| *c)).collect();
        if self.changed().iter().any(|c| watched.contains(c)) {
            return false;
        }
        match self {
            Edit::Insert(row) => matches(&sel.filter, sel.model, row).is_some(),
            // The rows after a limit are unknown, unless a unique key leaves at most one row.
            Edit::Delete { .. } => {
                sel.limit.is_none() || sel.filter.conds.iter().any(|c| c.op == Op::Eq && sel.model.col(c.column).unique)
            }
            Edit::Update { .. } | Edit::Increment { .. } => true,
        }
    }
}

/// The one equality of a filter of one condition.
fn single_eq(filter: &Filter) -> Option<(usize, Value)> {
    match filter.conds.as_slice() {
        [c] if c.op == Op::Eq && filter.is_flat() => Some((c.column, c.values[0].to_json())),
        _ => None,
    }
}

impl Overlay {
    /// The answer from `committed` (the base's rows) with the pending writes applied.
    pub(crate) fn finish(&self, committed: &Rows) -> Finished {
        let model = self.base.model;
        let mut ambiguous = Vec::new();
        let mut rows: Vec<Arc<Row>> = committed.to_vec();
        for (p, before) in &self.writes {
            let after = p.progress.stage();
            let Some(edit) = edit_of(&p.op) else { return Finished::Unprovable };
            let in_doubt = match (before, after) {
                (Stage::Queued, Stage::Queued) => false,
                (Stage::Failed, _) | (_, Stage::Failed) | (Stage::Published, Stage::Published) => continue,
                // COMMIT was under way while the base was read: the base may or may not hold the write.
                // Replaying it is harmless where it is idempotent (updates set values, deletes remove, an
                // insert is skipped when its row is there already); an increment would count twice.
                _ if matches!(edit, Edit::Increment { .. }) => {
                    ambiguous.push(p.answer.clone());
                    continue;
                }
                _ => true,
            };
            apply(model, &mut rows, edit, &self.base.filter, in_doubt);
        }
        if !ambiguous.is_empty() {
            return Finished::Ambiguous(ambiguous);
        }
        match &self.shape {
            Shape::Window(w, window_rows) => {
                // The committed window held the whole partition iff it was not full.
                let whole = (committed.len() as u64) < *window_rows;
                let order = (w.column(), model.col(w.column()).name);
                if !sort(&mut rows, &[(order, true)]) {
                    return Finished::Unprovable;
                }
                w.answer(&rows.into(), if whole { u64::MAX } else { 0 }).map_or(Finished::Unprovable, Finished::Rows)
            }
            Shape::Read => self.refine(rows),
        }
    }

    /// The read's own filter, order and limit over the edited rows.
    fn refine(&self, mut rows: Vec<Arc<Row>>) -> Finished {
        let (sel, model) = (&self.read, self.read.model);
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows.drain(..) {
            match matches(&sel.filter, model, &r) {
                Some(true) => kept.push(r),
                Some(false) => {}
                None => return Finished::Unprovable,
            }
        }
        let order: Vec<((usize, &str), bool)> =
            sel.order.iter().map(|&(c, desc)| ((c, model.col(c).name), desc)).collect();
        if !sort(&mut kept, &order) {
            return Finished::Unprovable;
        }
        kept.truncate(sel.limit.map_or(usize::MAX, |l| l as usize));
        Finished::Rows(kept.into())
    }
}

/// Applies one edit to rows read with `base` (an insert joins only when it matches the base's equalities;
/// `in_doubt`: not when a row equal to it but for the id is there, i.e. it committed into the base).
fn apply(model: &ModelDef, rows: &mut Vec<Arc<Row>>, edit: Edit<'_>, base: &Filter, in_doubt: bool) {
    let hit = |r: &Row, (col, value): &(usize, Value)| r.get(model.col(*col).name) == Some(value);
    match edit {
        Edit::Insert(row) => {
            let eqs = base.conds.iter().filter(|c| c.op == Op::Eq);
            let belongs = eqs.into_iter().all(|c| row.get(model.col(c.column).name) == Some(&c.values[0].to_json()));
            let committed = in_doubt && rows.iter().any(|r| r.iter().all(|(k, v)| k == "id" || row.get(k) == Some(v)));
            if belongs && !committed {
                rows.push(Arc::new(row));
            }
        }
        Edit::Update { key, sets } => {
            for r in rows.iter_mut().filter(|r| hit(r, &key)) {
                let row = Arc::make_mut(r);
                for (i, v) in &sets {
                    row.insert(model.col(*i).name.to_owned(), v.clone());
                }
            }
        }
        Edit::Increment { key, column, delta } => {
            let name = model.col(column).name;
            for r in rows.iter_mut().filter(|r| hit(r, &key)) {
                let row = Arc::make_mut(r);
                let next = match (row.get(name), delta) {
                    (Some(Value::Number(n)), Cell::Int(d)) if n.is_i64() => n.as_i64().map(|v| Value::from(v + d)),
                    (Some(Value::Number(n)), Cell::Int(d)) => n.as_f64().map(|v| Value::from(v + *d as f64)),
                    (Some(Value::Number(n)), Cell::Float(d)) => n.as_f64().map(|v| Value::from(v + d)),
                    // NULL + x is NULL in SQL.
                    _ => Some(Value::Null),
                };
                row.insert(name.to_owned(), next.unwrap_or(Value::Null));
            }
        }
        Edit::Delete { key } => rows.retain(|r| !hit(r, &key)),
    }
}

/// Sorts rows as the database orders them: each column (NULL smallest), then `id` ascending with the ids
/// of pending inserts (null) after every committed one. `false` when a compared value is not a number
/// (text order is the database's collation).
fn sort(rows: &mut [Arc<Row>], order: &[((usize, &str), bool)]) -> bool {
    let comparable = rows.iter().all(|r| {
        order.iter().all(|((_, name), _)| matches!(r.get(*name), None | Some(Value::Null | Value::Number(_))))
    });
    if !comparable {
        return false;
    }
    let num = |r: &Row, name: &str| r.get(name).and_then(Value::as_f64);
    rows.sort_by(|a, b| {
        for ((_, name), desc) in order {
            let o = match (num(a, name), num(b, name)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        let id = |r: &Row| r.get("id").and_then(Value::as_i64).unwrap_or(i64::MAX);
        id(a).cmp(&id(b))
    });
    true
}

/// Whether `row` meets `filter` as the database would decide, or `None` when botdb cannot be sure (text
/// compared beyond exact equality: collations differ by backend; ranges over anything but numbers).
fn matches(filter: &Filter, model: &ModelDef, row: &Row) -> Option<bool> {
    if !filter.is_flat() {
        return None;
    }
    for c in &filter.conds {
        let v = row.get(model.col(c.column).name).unwrap_or(&Value::Null);
        if !predicate(c, model.col(c.column).kind, v)? {
            return Some(false);
        }
    }
    Some(true)
}

fn predicate(c: &Predicate, kind: Kind, v: &Value) -> Option<bool> {
    let eq = |cell: &Cell| equal(kind, v, &cell.to_json());
    Some(match c.op {
        Op::IsNull => v.is_null(),
        Op::IsNotNull => !v.is_null(),
        // Patterns are the database's to decide.
        Op::Like => return None,
        _ if v.is_null() => false,
        Op::Eq => eq(&c.values[0])?,
        Op::Ne => !eq(&c.values[0])?,
        Op::In => {
            let mut any = false;
            for cell in &c.values {
                any |= eq(cell)?;
            }
            any
        }
        Op::Nin => {
            let mut any = false;
            for cell in &c.values {
                any |= eq(cell)?;
            }
            !any
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let (a, b) = (v.as_f64()?, c.values[0].to_json().as_f64()?);
            match c.op {
                Op::Gt => a > b,
                Op::Gte => a >= b,
                Op::Lt => a < b,
                _ => a <= b,
            }
        }
    })
}

/// SQL equality of a row's value and an operand: exact, except text that differs only in case or trailing
/// spaces (equal under some collations): unsure.
fn equal(kind: Kind, a: &Value, b: &Value) -> Option<bool> {
    if a == b {
        return Some(true);
    }
    match (kind, a, b) {
        (Kind::Text, Value::String(x), Value::String(y)) => {
            let fold = |s: &str| s.trim_end().to_lowercase();
            if fold(x) == fold(y) { None } else { Some(false) }
        }
        (_, Value::Number(x), Value::Number(y)) => Some(x.as_f64() == y.as_f64()),
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::model;
    use serde_json::json;

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn filters_are_evaluated_as_sql_would_or_not_at_all() {
        let m = model("Messages").unwrap();
        let r = row(json!({"chat_id": "c", "time": 5.0, "user_id": null, "message_id": "Ab"}));
        let f = |v: Value| Filter::parse(m, &v).unwrap();
        assert_eq!(matches(&f(json!({"chat_id": "c", "time": {"$gt": 4}})), m, &r), Some(true));
        assert_eq!(matches(&f(json!({"time": {"$lt": 5}})), m, &r), Some(false));
        assert_eq!(matches(&f(json!({"user_id": null})), m, &r), Some(true));
        // NULL never equals, and `<>` on NULL is not true either.
        assert_eq!(matches(&f(json!({"user_id": "u"})), m, &r), Some(false));
        assert_eq!(matches(&f(json!({"user_id": {"$ne": "u"}})), m, &r), Some(false));
        assert_eq!(matches(&f(json!({"message_id": {"$in": ["x", "Ab"]}})), m, &r), Some(true));
        // Text that a collation may call equal: unsure, never guessed.
        assert_eq!(matches(&f(json!({"message_id": "ab"})), m, &r), None);
        assert_eq!(matches(&f(json!({"message_id": {"$gt": "A"}})), m, &r), None);
    }

    #[test]
    fn rows_sort_as_the_database_orders_them() {
        let mut rows: Vec<Arc<Row>> = [
            json!({"id": 2, "time": 1.0}),
            json!({"id": null, "time": 3.0}),
            json!({"id": 1, "time": null}),
            json!({"id": 3, "time": 3.0}),
        ]
        .into_iter()
        .map(|v| Arc::new(row(v)))
        .collect();
        assert!(sort(&mut rows, &[((0, "time"), true)]));
        let ids: Vec<Value> = rows.iter().map(|r| r["id"].clone()).collect();
        // Newest first, NULL time last; equal times by id with a pending row (null id) after committed ones.
        assert_eq!(ids, [json!(3), Value::Null, json!(2), json!(1)]);
        let mut text = vec![Arc::new(row(json!({"id": 1, "time": "a"})))];
        assert!(!sort(&mut text, &[((0, "time"), false)]), "text order is the collation's");
    }
}
