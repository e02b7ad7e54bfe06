//! Executes one batch in one transaction: inserts of a model grouped into multi-row `INSERT`s (rows in index
//! order, chunked under the bind-parameter limit), every other write in submission order. A failing write is
//! isolated (a failed multi-row insert is retried row by row; on PostgreSQL each step runs in a savepoint,
//! since any error aborts its transaction): only its own result is an error. Busy/locked errors fail the
//! whole attempt so the engine retries the batch.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use serde_json::Value;

use crate::core::engine::Engine;
use crate::core::exec::{self, Select};
use crate::core::filter::Filter;
use crate::core::registry::Kind;
use crate::core::value::{Cell, Row};
use crate::optimization::cache::policy::{Reach, Touched, inserted, partition_column, reach_of};
use crate::utils::error::{Error, Result};

use super::ops::{WriteOp, WriteOutcome};
use super::plan::{Step, plan};

/// What one committed batch answers.
#[derive(Debug)]
pub struct BatchResult {
    /// One result per write, in submission order.
    pub results: Vec<Result<WriteOutcome>>,
    /// What the batch touched (for cache invalidation).
    pub touched: Vec<Touched>,
    /// Writes that ran alone because the grouped statement holding them failed (a poisoned row).
    pub isolated: usize,
}

/// The index order of a row: its partition (chat, …), then its time.
fn index_key(op: &WriteOp) -> (String, f64) {
    let WriteOp::Insert(r) = op else { return (String::new(), 0.0) };
    let part = partition_column(r.model).map(|p| match &r.cells[p] {
        Cell::Text(s) => s.clone(),
        other => other.to_json().to_string(),
    });
    let time = r
        .model
        .columns
        .iter()
        .position(|c| c.kind == Kind::Float && (c.name == "time" || c.name == "timestamp"))
        .and_then(|i| if let Cell::Float(f) = r.cells[i] { Some(f) } else { None });
    (part.unwrap_or_default(), time.unwrap_or(0.0))
}

/// Runs `ops` in one write transaction and commits it.
///
/// # Errors
/// Errors of the whole batch: [`Error::Busy`] after retries, [`Error::Indeterminate`] when COMMIT failed, or
/// a database error that is not any one write's fault.
pub async fn execute(engine: &Engine, ops: Arc<Vec<WriteOp>>) -> Result<BatchResult> {
    engine
        .write("batch", move |txn| {
            let ops = ops.clone();
            Box::pin(async move {
                let backend = txn.get_database_backend();
                let pg = backend == DbBackend::Postgres;
                let mut results: Vec<Option<Result<WriteOutcome>>> = (0..ops.len()).map(|_| None).collect();
                let mut touched = Vec::new();
                let mut isolated_writes = 0;
                for step in plan(&ops, backend != DbBackend::MySql, backend == DbBackend::MySql) {
                    let started = std::time::Instant::now();
                    let (kind, members) = match &step {
                        Step::Inserts(v) => ("insert", v.len()),
                        Step::Updates(v) => ("update", v.len()),
                        Step::Increments(v) => ("increment", v.len()),
                        Step::One(_) => ("one", 1),
                    };
                    match step {
                        Step::Updates(idx) | Step::Increments(idx) if idx.len() > 1 => {
                            let inc = matches!(ops[idx[0]], WriteOp::Increment { .. });
                            let run = async |c: &sea_orm::DatabaseTransaction| {
                                if inc { run_increments(c, &ops, &idx).await } else { run_updates(c, &ops, &idx).await }
                            };
                            let grouped = if pg { guarded(txn, run).await } else { run(txn).await };
                            match grouped {
                                Ok((counts, t)) => {
                                    touched.push(t);
                                    for (&i, n) in idx.iter().zip(counts) {
                                        results[i] = Some(Ok(WriteOutcome::Count(n)));
                                    }
                                }
                                Err(e @ (Error::Busy { .. } | Error::Indeterminate(_))) => return Err(e),
                                // Isolate the failing write(s): one statement each.
                                Err(e) => {
                                    tracing::debug!(error = %e, writes = idx.len(), "grouped statement failed; isolating");
                                    isolated_writes += idx.len();
                                    for &i in &idx {
                                        isolated(txn, pg, &ops[i], &mut results[i], &mut touched).await?;
                                    }
                                }
                            }
                        }
                        Step::Inserts(mut idx) => {
                            idx.sort_by(|&a, &b| {
                                let (ka, kb) = (index_key(&ops[a]), index_key(&ops[b]));
                                ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
                            });
                            let rows: Vec<_> = idx
                                .iter()
                                .filter_map(|&i| if let WriteOp::Insert(r) = &ops[i] { Some(r.clone()) } else { None })
                                .collect();
                            let many = if pg {
                                guarded(txn, async |c| exec::insert_many(c, &rows).await).await
                            } else {
                                exec::insert_many(txn, &rows).await
                            };
                            match many {
                                Ok(done) => {
                                    for (&i, row) in idx.iter().zip(done) {
                                        touched.push(inserted(ops[i].model(), &row));
                                        results[i] = Some(Ok(WriteOutcome::Row(row)));
                                    }
                                }
                                Err(e @ (Error::Busy { .. } | Error::Indeterminate(_))) => return Err(e),
                                // Isolate the failing row(s): one statement each.
                                Err(e) => {
                                    tracing::debug!(error = %e, writes = idx.len(), "multi-row insert failed; isolating");
                                    isolated_writes += idx.len();
                                    for &i in &idx {
                                        isolated(txn, pg, &ops[i], &mut results[i], &mut touched).await?;
                                    }
                                }
                            }
                        }
                        Step::Updates(idx) | Step::Increments(idx) => {
                            isolated(txn, pg, &ops[idx[0]], &mut results[idx[0]], &mut touched).await?
                        }
                        Step::One(i) => isolated(txn, pg, &ops[i], &mut results[i], &mut touched).await?,
                    }
                    tracing::trace!(kind, members, micros = started.elapsed().as_micros() as u64, "batch step");
                }
                let results = results
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| Err(Error::Database { op: "batch", message: "write not planned".into() }))
                    })
                    .collect();
                Ok(BatchResult { results, touched, isolated: isolated_writes })
            })
        })
        .await
}

/// Runs one write alone (in a savepoint on PostgreSQL) and records its result in `slot`. Only a busy error
/// is returned: it aborts the attempt so the engine retries the whole batch.
async fn isolated(
    txn: &sea_orm::DatabaseTransaction,
    pg: bool,
    op: &WriteOp,
    slot: &mut Option<Result<WriteOutcome>>,
    touched: &mut Vec<Touched>,
) -> Result<()> {
    let run = async || if pg { guarded(txn, async |c| run_one(c, op).await).await } else { run_one(txn, op).await };
    let mut one = run().await;
    // A concurrent insert of the same unique key (another process): now it is an update.
    if matches!((&one, op), (Err(Error::Constraint { .. }), WriteOp::Save { unique: true, .. })) {
        one = run().await;
    }
    match one {
        Ok((out, t)) => {
            touched.extend(t);
            *slot = Some(Ok(out));
            Ok(())
        }
        Err(e @ Error::Busy { .. }) => Err(e),
        Err(e) => {
            *slot = Some(Err(e));
            Ok(())
        }
    }
}

/// Runs `f` in a savepoint of `txn`, released on success and rolled back on error.
async fn guarded<T, F>(txn: &sea_orm::DatabaseTransaction, f: F) -> Result<T>
where
    F: AsyncFnOnce(&sea_orm::DatabaseTransaction) -> Result<T>,
{
    let sp = txn.begin().await.map_err(|e| Error::from_db("savepoint", "", e))?;
    match f(&sp).await {
        Ok(v) => {
            sp.commit().await.map_err(|e| Error::from_db("savepoint", "", e))?;
            Ok(v)
        }
        Err(e) => {
            sp.rollback().await.map_err(|e| Error::from_db("savepoint", "", e))?;
            Err(e)
        }
    }
}

/// The partition column to learn through `RETURNING` (SQLite, PostgreSQL) when the filter does not name
/// the partition itself; `None` where a separate look-up (or nothing) is needed.
fn returning_partition<C: ConnectionTrait>(
    c: &C,
    model: &'static crate::core::registry::ModelDef,
    filter: &Filter,
) -> Option<usize> {
    let p = partition_column(model)?;
    (c.get_database_backend() != DbBackend::MySql && filter.eq_value(p).is_none()).then_some(p)
}

/// The reach of an update from the partition values it returned (and the new value, if it moved rows).
fn reach_from(
    model: &'static crate::core::registry::ModelDef,
    p: usize,
    values: Option<Vec<Value>>,
    changes: Option<&crate::core::data::Changes>,
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
        let (Some(vs), Some(_)) = (p, partition_column(model)) else {
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
async fn run_updates<C: ConnectionTrait>(c: &C, ops: &[WriteOp], idx: &[usize]) -> Result<(Vec<u64>, Touched)> {
    let WriteOp::Update { filter, changes } = &ops[idx[0]] else {
        return Err(Error::InvalidRequest("not an update".into()));
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
    let p = partition_column(model);
    let (mut counts, mut parts) = (Vec::with_capacity(items.len()), Vec::new());
    // A key's items must share a statement so the latest wins: cut only between keys.
    for chunk in chunks_by_key(&items, |(k, _)| *k) {
        let (n, vs) = exec::update_grouped(c, model, key, &padded(chunk.to_vec()), p, 64).await?;
        counts.extend_from_slice(&n[..chunk.len()]);
        parts.push(vs);
    }
    Ok((counts, reach_of_groups(model, parts)))
}

/// A group of integer increments of one column by one key column: the deltas of a key summed, one `CASE`
/// arm per key, in statements of at most [`GROUP_CHUNK`] keys. Each increment answers the rows its key
/// matched, as it would alone.
async fn run_increments<C: ConnectionTrait>(c: &C, ops: &[WriteOp], idx: &[usize]) -> Result<(Vec<u64>, Touched)> {
    let WriteOp::Increment { model, filter, column, .. } = &ops[idx[0]] else {
        return Err(Error::InvalidRequest("not an increment".into()));
    };
    let key = filter.conds[0].column;
    // (key, summed delta) in first-seen order, and each op's key position.
    let mut sums: Vec<(&Cell, i64)> = Vec::new();
    let mut pos = Vec::with_capacity(idx.len());
    for &i in idx {
        let WriteOp::Increment { filter, delta: Cell::Int(d), .. } = &ops[i] else {
            return Err(Error::InvalidRequest("not an integer increment".into()));
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
    let p = partition_column(model);
    let (mut per_key, mut parts) = (Vec::with_capacity(sums.len()), Vec::new());
    for chunk in sums.chunks(GROUP_CHUNK) {
        let (n, vs) = exec::increment_grouped(c, model, key, *column, &padded(chunk.to_vec()), p, 64).await?;
        per_key.extend_from_slice(&n[..chunk.len()]);
        parts.push(vs);
    }
    Ok((pos.into_iter().map(|at| per_key[at]).collect(), reach_of_groups(model, parts)))
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

/// One non-grouped write.
async fn run_one<C: ConnectionTrait>(c: &C, op: &WriteOp) -> Result<(WriteOutcome, Vec<Touched>)> {
    match op {
        WriteOp::Insert(row) => {
            let r = exec::insert(c, row).await?;
            let t = inserted(row.model, &r);
            Ok((WriteOutcome::Row(r), vec![t]))
        }
        WriteOp::Update { filter, changes } => {
            let m = changes.model;
            if let Some(p) = returning_partition(c, m, filter) {
                let (n, values) =
                    exec::update_returning(c, m, filter, exec::UpdateSet::Changes(changes), p, 64).await?;
                return Ok((WriteOutcome::Count(n), vec![reach_from(m, p, values, Some(changes))]));
            }
            let reach = reach_of(c, m, filter, Some(changes)).await?;
            let n = exec::update(c, filter, changes).await?;
            Ok((WriteOutcome::Count(n), vec![Touched { model: m, reach }]))
        }
        WriteOp::Delete { model, filter } => {
            let reach = reach_of(c, model, filter, None).await?;
            let n = exec::delete(c, model, filter).await?;
            Ok((WriteOutcome::Count(n), vec![Touched { model, reach }]))
        }
        WriteOp::Increment { model, filter, column, delta } => {
            if let Some(p) = returning_partition(c, model, filter) {
                let set = exec::UpdateSet::Increment(*column, delta);
                let (n, values) = exec::update_returning(c, model, filter, set, p, 64).await?;
                return Ok((WriteOutcome::Count(n), vec![reach_from(model, p, values, None)]));
            }
            let reach = reach_of(c, model, filter, None).await?;
            let n = exec::increment(c, model, filter, *column, delta).await?;
            Ok((WriteOutcome::Count(n), vec![Touched { model, reach }]))
        }
        WriteOp::Save { model, key, changes, new_row, .. } => {
            let sel = Select { model, filter: key.clone(), order: vec![(0, false)], limit: Some(1) };
            if let Some(mut row) = exec::select_for_update(c, &sel).await?.into_iter().next() {
                let mut touched = vec![inserted(model, &row)];
                if let Some(changes) = changes {
                    let id = row.get("id").cloned().unwrap_or(Value::Null);
                    let by_id = Filter::all().and_eq(0, Cell::from_json(model, model.col(0), &id)?);
                    exec::update(c, &by_id, changes).await?;
                    changes.apply_to(&mut row);
                    touched.push(inserted(model, &row));
                }
                Ok((WriteOutcome::Row(row), touched))
            } else {
                let row: Row = exec::insert(c, new_row.as_ref().map_err(Clone::clone)?).await?;
                let t = inserted(model, &row);
                Ok((WriteOutcome::Row(row), vec![t]))
            }
        }
    }
}
