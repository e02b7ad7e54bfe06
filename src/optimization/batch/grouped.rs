//! Grouped statements: several writes of a batch in one statement. Same-shaped updates by a key in one
//! `UPDATE … CASE`, integer increments of a key summed in one `UPDATE … SET c = c + CASE`, upserts of a model
//! by one key column as one locking read, grouped updates and one multi-row insert. Each write answers what
//! it would alone; a failing group is re-run write by write by the executor.

use std::collections::HashMap;

use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::core::exec::{self, Select};
use crate::core::filter::Filter;
use crate::core::value::{Cell, Row};
use crate::optimization::partition::{Reach, Touched, inserted};
use crate::utils::error::{Error, Result};

use super::ops::{WriteOp, WriteOutcome};

/// Items per grouped statement: a `CASE` arm per item is evaluated for every matched row, so groups are cut
/// into statements of at most this many items.
const GROUP_CHUNK: usize = 128;

/// Pads `items` by repeating the last one up to the next power of two (at most [`GROUP_CHUNK`]), so grouped
/// statements come in a few sizes whose prepared statements the driver's cache keeps. A repeated arm is
/// harmless: `CASE` takes the first match and `IN` ignores duplicates.
fn padded<T: Clone>(mut items: Vec<T>) -> Vec<T> {
    let target = items.len().next_power_of_two().min(GROUP_CHUNK.max(items.len()));
    if let Some(last) = items.last().cloned() {
        items.resize(target, last);
    }
    items
}

/// Merges the partition values of grouped statements (`None`: too many to list).
fn reach_of_groups(model: &'static crate::core::registry::ModelDef, parts: Vec<Option<Vec<Value>>>) -> Touched {
    let mut all: Vec<Value> = Vec::new();
    for p in parts {
        let (Some(vs), Some(_)) = (p, model.partition) else {
            return Touched { model, reach: Reach::Everything };
        };
        for v in vs {
            if !all.contains(&v) {
                all.push(v);
            }
        }
    }
    Touched { model, reach: if all.len() > 64 { Reach::Everything } else { Reach::Partitions(all) } }
}

/// A group of same-shaped updates (see [`super::plan::group_shape`]), in statements of at most
/// [`GROUP_CHUNK`] items; later items win where keys repeat, as if run in order.
pub(super) async fn run_updates<C: ConnectionTrait>(
    c: &C,
    ops: &[WriteOp],
    idx: &[usize],
) -> Result<(Vec<u64>, Touched)> {
    let WriteOp::Update { filter, changes } = &ops[idx[0]] else {
        return Err(Error::internal("a grouped update holds a write that is not an update"));
    };
    let model = changes.model;
    let key = filter.conds[0].column;
    let items: Vec<_> = idx
        .iter()
        .filter_map(|&i| match &ops[i] {
            WriteOp::Update { filter, changes } => Some((&filter.conds[0].values[0], changes)),
            _ => None,
        })
        .collect();
    let p = model.partition;
    let (mut counts, mut parts) = (Vec::with_capacity(items.len()), Vec::new());
    // A key's items must share a statement so the latest wins: cut only between keys.
    for chunk in chunks_by_key(&items, |(k, _)| *k) {
        let (n, vs) = exec::update_grouped(c, model, key, &padded(chunk.to_vec()), p, 64).await?;
        counts.extend_from_slice(&n[..chunk.len()]);
        parts.push(vs);
    }
    // Rows that moved to another partition also left one nobody returned.
    if changes.sets.iter().any(|(i, _)| Some(*i) == p) {
        return Ok((counts, Touched { model, reach: Reach::Everything }));
    }
    Ok((counts, reach_of_groups(model, parts)))
}

/// What a group of increments answered: rows matched per increment, what the group touched, and per
/// increment whose key matched exactly one row, the column's value after the group (for write-through).
pub(super) type Incremented = (Vec<u64>, Touched, Vec<Option<Cell>>);

/// A group of integer increments of one column by one key column: the deltas of a key summed, one `CASE`
/// arm per key, in statements of at most [`GROUP_CHUNK`] keys. Each increment answers the rows its key
/// matched, as it would alone.
pub(super) async fn run_increments<C: ConnectionTrait>(c: &C, ops: &[WriteOp], idx: &[usize]) -> Result<Incremented> {
    let WriteOp::Increment { model, filter, column, .. } = &ops[idx[0]] else {
        return Err(Error::internal("a grouped increment holds a write that is not an increment"));
    };
    let key = filter.conds[0].column;
    // (key, summed delta) in first-seen order, and each op's key position.
    let mut sums: Vec<(&Cell, i64)> = Vec::new();
    let mut pos = Vec::with_capacity(idx.len());
    for &i in idx {
        let WriteOp::Increment { filter, delta: Cell::Int(d), .. } = &ops[i] else {
            return Err(Error::internal("a grouped increment holds a non-integer delta"));
        };
        let k = &filter.conds[0].values[0];
        match sums.iter().position(|(x, _)| *x == k) {
            Some(at) => {
                let sum =
                    sums[at].1.checked_add(*d).ok_or_else(|| Error::InvalidRequest("increment overflows".into()))?;
                sums[at].1 = sum;
                pos.push(at);
            }
            None => {
                pos.push(sums.len());
                sums.push((k, *d));
            }
        }
    }
    let p = model.partition;
    let (mut per_key, mut after, mut parts) = (Vec::with_capacity(sums.len()), Vec::new(), Vec::new());
    for chunk in sums.chunks(GROUP_CHUNK) {
        let done = exec::increment_grouped(c, model, key, *column, &padded(chunk.to_vec()), p, 64).await?;
        per_key.extend_from_slice(&done.counts[..chunk.len()]);
        for v in done.values.into_iter().take(chunk.len()) {
            // A value the database returned decodes; one that does not only forgoes the write-through.
            after.push(v.and_then(|v| Cell::from_json(model, model.col(*column), &v).ok()));
        }
        parts.push(done.partitions);
    }
    let counts = pos.iter().map(|&at| per_key[at]).collect();
    let after = pos.iter().map(|&at| after.get(at).cloned().flatten()).collect();
    Ok((counts, reach_of_groups(model, parts), after))
}

/// Cuts `items` into runs of about [`GROUP_CHUNK`] items (longer when a key repeats later), never
/// splitting the items of one key across runs.
fn chunks_by_key<T, K: std::hash::Hash + Eq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&[T]> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(items.len());
    for (i, x) in items.iter().enumerate() {
        last.insert(key(x), i);
    }
    let mut out = Vec::new();
    let (mut start, mut j, mut end) = (0, 0, GROUP_CHUNK.min(items.len()));
    while start < items.len() {
        while j < end {
            end = end.max(last[&key(&items[j])] + 1);
            j += 1;
        }
        out.push(&items[start..end]);
        start = end;
        end = (start + GROUP_CHUNK).min(items.len());
    }
    out
}

/// An upsert whose key has a row: (its slot in the group, the row's id, the changes, the row).
type ExistingUpsert<'a> = (usize, Cell, &'a crate::core::data::Changes, Row);

/// What one upsert of a group answers, and what it touched.
pub(super) type Saved = (Result<WriteOutcome>, Vec<Touched>);

/// Upserts of one model by one key column, each key once (see [`super::plan`]): one locking read of every
/// key's first row (by id), the existing rows' changes as grouped updates by id (one statement per shape),
/// the missing keys' rows in one multi-row insert. Each upsert answers its row, as it would alone.
pub(super) async fn run_saves<C: ConnectionTrait>(c: &C, ops: &[WriteOp], idx: &[usize]) -> Result<Vec<Saved>> {
    let WriteOp::Save { model, key, .. } = &ops[idx[0]] else {
        return Err(Error::internal("a grouped upsert holds a write that is not an upsert"));
    };
    let model: &'static crate::core::registry::ModelDef = model;
    let kcol = key.conds[0].column;
    let kname = model.col(kcol).name;
    let keys: Vec<Cell> = idx.iter().filter_map(|&i| super::plan::save_key(&ops[i]).cloned()).collect();
    let filter = Filter {
        conds: vec![crate::core::filter::Predicate { column: kcol, op: crate::core::filter::Op::In, values: keys }],
        nested: Vec::new(),
    };
    let sel = Select { model, filter, order: vec![(0, false)], limit: None, offset: 0 };
    let mut first: HashMap<String, Row> = HashMap::new();
    for row in exec::select_for_update(c, &sel).await? {
        let k = row.get(kname).map(Value::to_string).unwrap_or_default();
        first.entry(k).or_insert(row);
    }
    let mut out: Vec<Option<Saved>> = idx.iter().map(|_| None).collect();
    // Updates of existing rows, grouped by the columns they set; inserts of the missing keys.
    let mut shapes: Vec<(Vec<usize>, Vec<ExistingUpsert<'_>>)> = Vec::new();
    let mut inserts: Vec<(usize, crate::core::data::NewRow)> = Vec::new();
    for (slot, &i) in idx.iter().enumerate() {
        let WriteOp::Save { key, changes, new_row, .. } = &ops[i] else { continue };
        let k = key.conds[0].values[0].to_json().to_string();
        match (first.get(&k), changes) {
            (Some(row), None) => out[slot] = Some((Ok(WriteOutcome::Row(row.clone())), vec![inserted(model, row)])),
            (Some(row), Some(ch)) => {
                let id = Cell::from_json(model, model.col(0), row.get("id").unwrap_or(&Value::Null))?;
                let shape: Vec<usize> = ch.sets.iter().map(|(c, _)| *c).collect();
                let item = (slot, id, ch, row.clone());
                match shapes.iter_mut().find(|(s, _)| *s == shape) {
                    Some((_, v)) => v.push(item),
                    None => shapes.push((shape, vec![item])),
                }
            }
            (None, _) => match new_row {
                Ok(r) => inserts.push((slot, r.clone())),
                Err(e) => out[slot] = Some((Err(e.clone()), vec![])),
            },
        }
    }
    for (_, items) in shapes {
        let pairs: Vec<(&Cell, &crate::core::data::Changes)> = items.iter().map(|(_, id, ch, _)| (id, *ch)).collect();
        exec::update_grouped(c, model, 0, &pairs, None, 0).await?;
        for (slot, _, ch, mut row) in items {
            let before = inserted(model, &row);
            ch.apply_to(&mut row);
            let after = inserted(model, &row);
            out[slot] = Some((Ok(WriteOutcome::Row(row)), vec![before, after]));
        }
    }
    let rows: Vec<_> = inserts.iter().map(|(_, r)| r.clone()).collect();
    for ((slot, _), row) in inserts.iter().zip(exec::insert_many(c, &rows).await?) {
        out[*slot] = Some((Ok(WriteOutcome::Row(row.clone())), vec![inserted(model, &row)]));
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| Error::Database { op: "save", message: "upsert not planned".into() }))
        .collect()
}
