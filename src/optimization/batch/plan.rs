//! The plan of one batch: which writes share a statement. Inserts of a model share a multi-row `INSERT`;
//! same-shaped updates by a key share one `UPDATE … CASE`; integer increments by a key share one
//! `UPDATE … SET c = c + CASE …` with the deltas of a key summed. A write joins the open group of its kind
//! only if it provably commutes with every write it would move ahead of (`commute`), so the batch's effect
//! and every write's answer are those of running the writes one by one in submission order.
//!
//! Then `fold`: an update or increment by a key that matches a row inserted earlier in the same batch is
//! applied to that row before it is written (the bot inserts a message and updates it twice by
//! `message_id`, usually within one batch: one row write instead of three). Its statement still runs, for
//! the rows already in the table, before the inserts; its answer counts both.

use std::collections::{HashMap, HashSet};

use crate::core::data::NewRow;
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
    (c.op == Op::Eq && filter.is_flat()).then(|| (c.column, &c.values[0]))
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

/// (Insert, later write) pairs checked per step of inserts before it stops moving (bounds planning cost).
const MAX_FOLD_CHECKS: usize = 16_384;

/// Writes folded into the inserts of their batch.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Folds {
    /// Insert → its row with the folded writes applied: what its `INSERT` writes (its answer stays the row
    /// submitted).
    pub(crate) rows: HashMap<usize, NewRow>,
    /// Folded write → the inserts it matched: its statement runs before they exist, and its answer counts
    /// them too.
    pub(crate) hits: HashMap<usize, Vec<usize>>,
    /// Folded increment → the column's value it left in the one insert it matched.
    pub(crate) after: HashMap<usize, Cell>,
}

/// The plan of a batch: its steps in order, and the writes folded into its inserts.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// The steps, run in this order.
    pub(crate) steps: Vec<Step>,
    /// What [`fold`] did.
    pub(crate) folds: Folds,
}

/// Plans a batch (`fold`: fold writes into the batch's inserts). `mysql`: text comparisons follow MySQL's
/// collations.
pub(crate) fn plan(ops: &[WriteOp], mysql: bool, fold: bool) -> Plan {
    let steps = group(ops, mysql);
    if fold { fold_into_inserts(ops, steps, mysql) } else { Plan { steps, folds: Folds::default() } }
}

/// How a later write meets a row an earlier insert of its batch adds.
enum Meets {
    /// It provably leaves the row alone (and commutes with its insert).
    Not,
    /// It provably changes exactly that row's non-key columns, as [`apply`] does.
    Folds,
    /// Anything else: the insert may not move past it.
    Unknown,
}

/// How `w` meets `row` (the insert's row with earlier folds applied).
fn meets(w: &WriteOp, row: &NewRow, mysql: bool) -> Meets {
    let model = row.model;
    let Some((filter, sets)) = reach(w) else {
        // Another insert commutes with this one; an upsert is never moved across.
        return match w {
            WriteOp::Insert(x) if x.explicit_id().is_none() && row.explicit_id().is_none() => Meets::Not,
            _ => Meets::Unknown,
        };
    };
    if row.explicit_id().is_some() || sets.iter().any(|&c| model.col(c).unique) {
        return Meets::Unknown;
    }
    let cell = |c: usize| &row.cells[c];
    if filter.conds.iter().any(|c| c.op == Op::Eq && differ(&c.values[0], cell(c.column), mysql)) {
        return Meets::Not;
    }
    let foldable = (group_shape(w).is_some() || increment_key(w).is_some())
        && model.partition.is_none_or(|p| !sets.contains(&p))
        && single_key(filter).is_some_and(|(k, v)| *v != Cell::Null && v == cell(k));
    if foldable { Meets::Folds } else { Meets::Unknown }
}

/// Applies a foldable write (see [`meets`]) to `row`; `false` if it cannot be applied exactly.
fn apply(w: &WriteOp, row: &mut NewRow) -> bool {
    match w {
        WriteOp::Update { changes, .. } => {
            for (c, v) in &changes.sets {
                row.cells[*c] = v.clone();
            }
            true
        }
        WriteOp::Increment { column, delta: Cell::Int(d), .. } => match &row.cells[*column] {
            // NULL + d is NULL.
            Cell::Null => true,
            Cell::Int(v) => v.checked_add(*d).map(|n| row.cells[*column] = Cell::Int(n)).is_some(),
            _ => false,
        },
        _ => false,
    }
}

/// Moves each step of inserts past the later writes that provably leave its rows alone or change exactly one
/// of its rows by its key (those are applied to the rows instead), up to the first write that does neither.
/// A step is moved only if something folds.
fn fold_into_inserts(ops: &[WriteOp], mut steps: Vec<Step>, mysql: bool) -> Plan {
    let mut folds = Folds::default();
    let mut done: HashSet<usize> = HashSet::new();
    let mut s = 0;
    while s < steps.len() {
        let Step::Inserts(members) = &steps[s] else {
            s += 1;
            continue;
        };
        if !done.insert(members[0]) {
            s += 1;
            continue;
        }
        let model = ops[members[0]].model();
        // The rows as submitted; those later writes changed so far, by position (cloned only when changed).
        let rows: Vec<(usize, &NewRow)> = members
            .iter()
            .filter_map(|&i| if let WriteOp::Insert(r) = &ops[i] { Some((i, r)) } else { None })
            .collect();
        let mut edited: HashMap<usize, NewRow> = HashMap::new();
        let mut hits: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut after: Vec<(usize, Cell)> = Vec::new();
        let mut stop = steps.len();
        let mut checks = 0;
        'later: for (t, step) in steps.iter().enumerate().skip(s + 1) {
            // The whole step folds or none of it: the insert moves to before a step, never into one.
            let mut found: Vec<(usize, Vec<usize>)> = Vec::new();
            for &j in step.members() {
                if !std::ptr::eq(ops[j].model(), model) {
                    continue;
                }
                checks += rows.len();
                if checks > MAX_FOLD_CHECKS {
                    stop = t;
                    break 'later;
                }
                let mut matched = Vec::new();
                for (k, (_, submitted)) in rows.iter().enumerate() {
                    match meets(&ops[j], edited.get(&k).unwrap_or(submitted), mysql) {
                        Meets::Not => {}
                        Meets::Folds => matched.push(k),
                        Meets::Unknown => {
                            stop = t;
                            break 'later;
                        }
                    }
                }
                if !matched.is_empty() {
                    found.push((j, matched));
                }
            }
            // Within a step, members share their key column and never change it: matching does not depend
            // on the order the step's members are applied in, which is submission order.
            if found.is_empty() {
                continue;
            }
            let mut changed: HashMap<usize, NewRow> = HashMap::new();
            let mut left = Vec::new();
            for (j, matched) in &found {
                for &k in matched {
                    let row = changed.entry(k).or_insert_with(|| edited.get(&k).unwrap_or(rows[k].1).clone());
                    if !apply(&ops[*j], row) {
                        stop = t;
                        break 'later;
                    }
                }
                if let (WriteOp::Increment { column, .. }, [k]) = (&ops[*j], matched.as_slice()) {
                    left.push((*j, changed[k].cells[*column].clone()));
                }
            }
            edited.extend(changed);
            after.extend(left);
            hits.extend(found.into_iter().map(|(j, m)| (j, m.into_iter().map(|k| rows[k].0).collect())));
        }
        if hits.is_empty() {
            s += 1;
            continue;
        }
        let step = steps.remove(s);
        steps.insert(stop - 1, step);
        folds.rows.extend(edited.into_iter().map(|(k, row)| (rows[k].0, row)));
        folds.hits.extend(hits);
        folds.after.extend(after);
    }
    Plan { steps, folds }
}

/// Groups a batch's writes into steps.
fn group(ops: &[WriteOp], mysql: bool) -> Vec<Step> {
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
        let steps = plan(&ops, false, false).steps;
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
        assert_eq!(
            plan(&ops, false, false).steps,
            vec![Step::Inserts(vec![0]), Step::Updates(vec![1]), Step::Inserts(vec![2])]
        );
        // A rewrite of the key is never grouped and nothing moves across it that it could affect.
        let ops = vec![
            update("a", json!({"interest_value": 0.1})),
            update("tmp", json!({"message_id": "a"})),
            update("a", json!({"interest_value": 0.2})),
        ];
        assert_eq!(plan(&ops, false, false).steps, vec![Step::Updates(vec![0]), Step::One(1), Step::Updates(vec![2])]);
        // Repeated updates of one key stay in order inside their group (the later one wins).
        let ops = vec![update("a", json!({"interest_value": 0.1})), update("a", json!({"interest_value": 0.2}))];
        assert_eq!(plan(&ops, false, false).steps, vec![Step::Updates(vec![0, 1])]);
    }

    #[test]
    fn mysql_text_comparison_is_conservative() {
        let a = update("ABC", json!({"interest_value": 0.1}));
        assert!(commute(&a, &insert("xyz", "c"), true));
        assert!(!commute(&a, &insert("abc", "c"), true), "MySQL compares case-insensitively");
        assert!(commute(&a, &insert("abc", "c"), false));
        assert!(!commute(&a, &insert("日本", "c"), true), "non-ASCII text is never proven different on MySQL");
        // Grouped on MySQL too (the statement checks at run time that its keys are exact there).
        assert_eq!(plan(&[a.clone(), a], true, false).steps, vec![Step::Updates(vec![0, 1])]);
    }

    fn delete(id: &str) -> WriteOp {
        let m = model("Messages").unwrap();
        WriteOp::Delete { model: m, filter: Filter::parse(m, &json!({ "message_id": id })).unwrap() }
    }

    fn image(hash: &str, count: i64) -> WriteOp {
        let m = model("Images").unwrap();
        WriteOp::Insert(
            NewRow::parse(
                m,
                &json!({"emoji_hash": hash, "path": hash, "timestamp": 1.0, "type": "emoji", "count": count}),
            )
            .unwrap(),
        )
    }

    fn cell(p: &Plan, insert: usize, model_name: &str, column: &str) -> Cell {
        p.folds.rows[&insert].cells[model(model_name).unwrap().column_index(column).unwrap()].clone()
    }

    #[test]
    fn updates_and_increments_of_a_new_row_fold_into_its_insert() {
        let ops = vec![
            insert("m1", "c"),
            insert("m2", "c"),
            update("m1", json!({"interest_value": 0.5})),
            update("m1", json!({"should_reply": true})),
            update("m1", json!({"interest_value": 0.75})),
            update("m9", json!({"interest_value": 0.1})),
            image("h", 1),
            increment("h"),
            increment("h"),
        ];
        let p = plan(&ops, false, true);
        // Every later write of their models folds or leaves the rows alone: the inserts go last.
        let expected = vec![
            Step::Updates(vec![2]),
            Step::Updates(vec![3]),
            Step::Updates(vec![4, 5]),
            Step::Increments(vec![7, 8]),
            Step::Inserts(vec![0, 1]),
            Step::Inserts(vec![6]),
        ];
        assert_eq!(p.steps, expected);
        assert_eq!(cell(&p, 0, "Messages", "interest_value"), Cell::Float(0.75), "the later update wins");
        assert_eq!(cell(&p, 0, "Messages", "should_reply"), Cell::Bool(true));
        assert!(!p.folds.rows.contains_key(&1), "m2 is written as submitted");
        assert_eq!(cell(&p, 6, "Images", "count"), Cell::Int(3));
        assert_eq!(p.folds.hits[&2], vec![0]);
        assert!(!p.folds.hits.contains_key(&5), "m9 is no row of the batch");
        assert_eq!((p.folds.after[&7].clone(), p.folds.after[&8].clone()), (Cell::Int(2), Cell::Int(3)));
        // Without folding, the plan is the grouping alone.
        assert_eq!(plan(&ops, false, false).folds, Folds::default());
    }

    #[test]
    fn an_insert_never_moves_past_a_write_it_cannot_fold() {
        // A delete of the new row: the insert stays before it, with what folded up to there.
        let ops = vec![insert("m1", "c"), update("m1", json!({"interest_value": 0.5})), delete("m1")];
        let p = plan(&ops, false, true);
        assert_eq!(p.steps, vec![Step::Updates(vec![1]), Step::Inserts(vec![0]), Step::One(2)]);
        assert_eq!(cell(&p, 0, "Messages", "interest_value"), Cell::Float(0.5));
        // A rewrite of the key, and an update that MySQL may call equal: nothing folds, nothing moves.
        let ops = vec![
            insert("m1", "c"),
            update("m1", json!({"message_id": "m2"})),
            update("m2", json!({"interest_value": 0.5})),
        ];
        assert_eq!(plan(&ops, false, true).steps, plan(&ops, false, false).steps);
        let ops = vec![insert("abc", "c"), update("ABC", json!({"interest_value": 0.5}))];
        assert_eq!(plan(&ops, true, true).folds, Folds::default());
        assert_eq!(plan(&ops, false, true).folds.hits.len(), 0, "different keys: nothing to fold");
        // A change of the row's partition (its chat) is not folded: the insert's reach would miss it.
        let ops = vec![insert("m1", "c"), update("m1", json!({"chat_id": "d"}))];
        assert_eq!(plan(&ops, false, true).folds, Folds::default());
    }
}
