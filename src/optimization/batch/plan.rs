//! The plan of one batch: which writes share a statement. Inserts of a model share a multi-row `INSERT`;
//! same-shaped updates by a key share one `UPDATE … CASE`; integer increments by a key share one
//! `UPDATE … SET c = c + CASE …` with the deltas of a key summed. A write joins the open group of its kind
//! only if it provably commutes with every write it would move ahead of (`commute`), so the batch's effect
//! and every write's answer are those of running the writes one by one in submission order.

use std::collections::HashMap;

use crate::core::filter::{Filter, Op};
use crate::core::registry::{Kind, model_index};
use crate::core::value::Cell;

use super::ops::WriteOp;

/// A step of a batch, holding indexes into the batch's writes (in submission order within the step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Inserts of one model, one multi-row statement per chunk.
    Inserts(Vec<usize>),
    /// Updates of one [`Shape`].
    Updates(Vec<usize>),
    /// Integer increments of one column by one key column.
    Increments(Vec<usize>),
    /// Upserts of one model by one key column, each key once.
    Saves(Vec<usize>),
    /// One write alone.
    One(usize),
}

impl Step {
    /// Its kind, as logs and metrics name it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Step::Inserts(_) => "insert",
            Step::Updates(_) => "update",
            Step::Increments(_) => "increment",
            Step::Saves(_) => "save",
            Step::One(_) => "one",
        }
    }

    /// The writes it holds.
    pub(crate) fn members(&self) -> &[usize] {
        match self {
            Step::Inserts(v) | Step::Updates(v) | Step::Increments(v) | Step::Saves(v) => v,
            Step::One(i) => std::slice::from_ref(i),
        }
    }

    fn push(&mut self, i: usize) {
        if let Step::Inserts(v) | Step::Updates(v) | Step::Increments(v) | Step::Saves(v) = self {
            v.push(i);
        }
    }
}

/// (model, key column, changed columns) of a groupable update.
pub(crate) type Shape = (usize, usize, Vec<usize>);

/// What kind of group a write can join.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Group {
    Insert(usize),
    Update(Shape),
    /// (model, key column, incremented column).
    Increment(usize, usize, usize),
    /// (model, key column) of an upsert.
    Save(usize, usize),
}

/// The one equality condition of a filter that is exactly `key = value`, if it is.
pub(crate) fn single_key(filter: &Filter) -> Option<(usize, &Cell)> {
    let [c] = filter.conds.as_slice() else { return None };
    (c.op == Op::Eq).then(|| (c.column, &c.values[0]))
}

/// The shape of an update that can share a statement with others: one equality filter on a key column, a
/// fixed set of changed columns not including the key.
pub(crate) fn group_shape(op: &WriteOp) -> Option<Shape> {
    let WriteOp::Update { filter, changes } = op else { return None };
    let (key, _) = single_key(filter)?;
    if changes.sets.iter().any(|(i, _)| *i == key) {
        return None;
    }
    Some((model_index(changes.model), key, changes.sets.iter().map(|(i, _)| *i).collect()))
}

fn group_of(op: &WriteOp) -> Option<Group> {
    match op {
        WriteOp::Insert(r) if r.explicit_id().is_none() => Some(Group::Insert(model_index(r.model))),
        WriteOp::Update { .. } => group_shape(op).map(Group::Update),
        WriteOp::Increment { model, column, .. } => {
            increment_key(op).map(|key| Group::Increment(model_index(model), key, *column))
        }
        WriteOp::Save { model, key, .. } => single_key(key).map(|(col, _)| Group::Save(model_index(model), col)),
        _ => None,
    }
}

/// The key column of an integer increment of an integer column by one key equality (the shape grouped
/// increments take), if it is one.
pub(crate) fn increment_key(op: &WriteOp) -> Option<usize> {
    let WriteOp::Increment { model, filter, column, delta: Cell::Int(_) } = op else { return None };
    let (key, _) = single_key(filter)?;
    (key != *column && model.col(*column).kind == Kind::Int).then_some(key)
}

/// The key value of an upsert.
pub(crate) fn save_key(op: &WriteOp) -> Option<&Cell> {
    match op {
        WriteOp::Save { key, .. } => single_key(key).map(|(_, v)| v),
        _ => None,
    }
}

/// Whether two cells are provably different under SQL `=`. MySQL's default collations compare text
/// case-insensitively, ignoring trailing spaces and accents, so there only plain ASCII text that differs
/// after folding case and trimming counts.
fn differ(a: &Cell, b: &Cell, mysql: bool) -> bool {
    match (a, b) {
        (Cell::Null, _) | (_, Cell::Null) => true,
        (Cell::Text(x), Cell::Text(y)) if mysql => {
            x.is_ascii() && y.is_ascii() && !x.trim_end().eq_ignore_ascii_case(y.trim_end())
        }
        _ => a != b,
    }
}

/// The filter of a write that selects rows, and the columns it changes.
fn reach(op: &WriteOp) -> Option<(&Filter, Vec<usize>)> {
    match op {
        WriteOp::Update { filter, changes } => Some((filter, changes.sets.iter().map(|(i, _)| *i).collect())),
        WriteOp::Increment { filter, column, .. } => Some((filter, vec![*column])),
        WriteOp::Delete { filter, .. } => Some((filter, vec![])),
        WriteOp::Insert(_) | WriteOp::Save { .. } => None,
    }
}

/// Whether `a` and `b` give the same effect and answers in either order. Conservative: `false` unless
/// proven (writes to other models; an insert whose row a filter's equality excludes; two filters with
/// different values for one equality column neither write changes). Writes that set a unique column never
/// commute with a write of their model (which of two clashing writes fails would depend on the order).
pub(crate) fn commute(a: &WriteOp, b: &WriteOp, mysql: bool) -> bool {
    let model = a.model();
    if !std::ptr::eq(model, b.model()) {
        return true;
    }
    let sets_unique = |cols: &[usize]| cols.iter().any(|&c| model.col(c).unique);
    match (a, b) {
        (WriteOp::Insert(x), WriteOp::Insert(y)) => x.explicit_id().is_none() && y.explicit_id().is_none(),
        (WriteOp::Insert(row), w) | (w, WriteOp::Insert(row)) => {
            let Some((filter, sets)) = reach(w) else { return false };
            row.explicit_id().is_none()
                && !sets_unique(&sets)
                && filter.conds.iter().any(|c| c.op == Op::Eq && differ(&c.values[0], &row.cells[c.column], mysql))
        }
        (x, y) => {
            let (Some((fx, sx)), Some((fy, sy))) = (reach(x), reach(y)) else { return false };
            if sets_unique(&sx) || sets_unique(&sy) {
                return false;
            }
            fx.conds.iter().filter(|c| c.op == Op::Eq && !sx.contains(&c.column) && !sy.contains(&c.column)).any(|c| {
                fy.conds
                    .iter()
                    .any(|d| d.column == c.column && d.op == Op::Eq && differ(&c.values[0], &d.values[0], mysql))
            })
        }
    }
}

/// Writes checked per candidate move before giving up and opening a new group (bounds planning cost).
const MAX_CHECKS: usize = 4096;

/// Plans a batch. `mysql`: text comparisons follow MySQL's collations.
pub(crate) fn plan(ops: &[WriteOp], mysql: bool) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut open: HashMap<Group, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(group) = group_of(op) else {
            steps.push(Step::One(i));
            continue;
        };
        if let Some(&s) = open.get(&group) {
            // An upsert group holds each key once: a repeated key needs the first one's row.
            let repeated = matches!(group, Group::Save(..))
                && steps[s].members().iter().any(|&j| save_key(&ops[j]) == save_key(op));
            let later: Vec<usize> = steps[s + 1..].iter().flat_map(|st| st.members().iter().copied()).collect();
            if !repeated && later.len() <= MAX_CHECKS && later.iter().all(|&j| commute(&ops[j], op, mysql)) {
                steps[s].push(i);
                continue;
            }
        }
        open.insert(group.clone(), steps.len());
        steps.push(match group {
            Group::Insert(_) => Step::Inserts(vec![i]),
            Group::Update(_) => Step::Updates(vec![i]),
            Group::Increment(..) => Step::Increments(vec![i]),
            Group::Save(..) => Step::Saves(vec![i]),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::data::{Changes, NewRow};
    use crate::core::registry::model;

    fn insert(id: &str, chat: &str) -> WriteOp {
        let m = model("Messages").unwrap();
        WriteOp::Insert(
            NewRow::parse(
                m,
                &json!({"message_id": id, "time": 1.0, "chat_id": chat, "chat_info_stream_id": chat,
                    "chat_info_platform": "qq", "chat_info_user_platform": "qq", "chat_info_user_id": "u",
                    "chat_info_user_nickname": "n", "chat_info_create_time": 1.0, "chat_info_last_active_time": 1.0}),
            )
            .unwrap(),
        )
    }

    fn update(id: &str, data: serde_json::Value) -> WriteOp {
        let m = model("Messages").unwrap();
        WriteOp::Update {
            filter: Filter::parse(m, &json!({ "message_id": id })).unwrap(),
            changes: Changes::parse(m, &data).unwrap(),
        }
    }

    fn increment(hash: &str) -> WriteOp {
        let m = model("Images").unwrap();
        WriteOp::Increment {
            model: m,
            filter: Filter::parse(m, &json!({ "emoji_hash": hash })).unwrap(),
            column: m.column_index("count").unwrap(),
            delta: Cell::Int(1),
        }
    }

    #[test]
    fn interleaved_independent_writes_form_one_group_per_kind() {
        // Each message inserted, then updated, by many callers whose writes interleave.
        let mut ops = vec![];
        for k in 0..10 {
            ops.push(insert(&format!("m{k}"), "c"));
            ops.push(update(&format!("m{}", k + 100), json!({"interest_value": 0.5})));
            ops.push(increment(&format!("h{}", k % 3)));
        }
        let steps = plan(&ops, false);
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert_eq!(steps[0], Step::Inserts((0..10).map(|k| 3 * k).collect()));
        assert_eq!(steps[1], Step::Updates((0..10).map(|k| 3 * k + 1).collect()));
        assert_eq!(steps[2], Step::Increments((0..10).map(|k| 3 * k + 2).collect()));
    }

    #[test]
    fn a_write_never_moves_ahead_of_a_write_it_depends_on() {
        // update m1 before its insert: the insert may not move ahead of the update (the update would then
        // change the new row).
        let ops = vec![insert("m0", "c"), update("m1", json!({"interest_value": 0.5})), insert("m1", "c")];
        assert_eq!(plan(&ops, false), vec![Step::Inserts(vec![0]), Step::Updates(vec![1]), Step::Inserts(vec![2])]);
        // A rewrite of the key is never grouped and nothing moves across it that it could affect.
        let ops = vec![
            update("a", json!({"interest_value": 0.1})),
            update("tmp", json!({"message_id": "a"})),
            update("a", json!({"interest_value": 0.2})),
        ];
        assert_eq!(plan(&ops, false), vec![Step::Updates(vec![0]), Step::One(1), Step::Updates(vec![2])]);
        // Repeated updates of one key stay in order inside their group (the later one wins).
        let ops = vec![update("a", json!({"interest_value": 0.1})), update("a", json!({"interest_value": 0.2}))];
        assert_eq!(plan(&ops, false), vec![Step::Updates(vec![0, 1])]);
    }

    #[test]
    fn mysql_text_comparison_is_conservative() {
        let a = update("ABC", json!({"interest_value": 0.1}));
        assert!(commute(&a, &insert("xyz", "c"), true));
        assert!(!commute(&a, &insert("abc", "c"), true), "MySQL compares case-insensitively");
        assert!(commute(&a, &insert("abc", "c"), false));
        assert!(!commute(&a, &insert("日本", "c"), true), "non-ASCII text is never proven different on MySQL");
        // Grouped on MySQL too (the statement checks at run time that its keys are exact there).
        assert_eq!(plan(&[a.clone(), a], true), vec![Step::Updates(vec![0, 1])]);
    }
}
