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
use crate::core::registry::{Kind, model_index};
use crate::core::value::{Cell, Row};
use crate::optimization::cache::policy::{Reach, Touched, inserted, partition_column, reach_of};
use crate::utils::error::{Error, Result};

use super::ops::{WriteOp, WriteOutcome};

/// The results of one committed batch: one per op, and what the batch touched.
pub type BatchResult = (Vec<Result<WriteOutcome>>, Vec<Touched>);

enum Step {
    Inserts(Vec<usize>),
    Updates(Vec<usize>),
    One(usize),
}

/// (model, key column, changed columns) of a groupable update.
type Shape = (usize, usize, Vec<usize>);

/// The shape of an update that can share a statement with others: one equality filter on a key column, a
/// fixed set of changed columns not including the key.
fn group_shape(op: &WriteOp) -> Option<Shape> {
    let WriteOp::Update { filter, changes } = op else { return None };
    let [c] = filter.conds.as_slice() else { return None };
    if c.op != crate::core::filter::Op::Eq || changes.sets.iter().any(|(i, _)| *i == c.column) {
        return None;
    }
    Some((model_index(changes.model), c.column, changes.sets.iter().map(|(i, _)| *i).collect()))
}

/// Groups inserts of a model until another kind of write on that model; inserts never move past a write to
/// their own model, so every write sees exactly what it would have seen in submission order.
fn plan(ops: &[WriteOp], group_updates: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut open: HashMap<usize, usize> = HashMap::new();
    // Per model: the open update group's shape and step.
    let mut open_updates: HashMap<usize, (Shape, usize)> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let m = model_index(op.model());
        if group_updates && let Some(shape) = group_shape(op) {
            open.remove(&m);
            match open_updates.get(&m) {
                Some((s, step)) if *s == shape => {
                    if let Step::Updates(v) = &mut steps[*step] {
                        v.push(i);
                    }
                }
                _ => {
                    open_updates.insert(m, (shape, steps.len()));
                    steps.push(Step::Updates(vec![i]));
                }
            }
            continue;
        }
        open_updates.remove(&m);
        match op {
            WriteOp::Insert(r) if r.explicit_id().is_none() => match open.get(&m) {
                Some(&s) => {
                    if let Step::Inserts(v) = &mut steps[s] {
                        v.push(i);
                    }
                }
                None => {
                    open.insert(m, steps.len());
                    steps.push(Step::Inserts(vec![i]));
                }
            },
            _ => {
                open.remove(&m);
                steps.push(Step::One(i));
            }
        }
    }
    steps
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
                for step in plan(&ops, backend != DbBackend::MySql) {
                    match step {
                        Step::Updates(idx) if idx.len() > 1 => {
                            let grouped = if pg {
                                guarded(txn, async |c| run_updates(c, &ops, &idx).await).await
                            } else {
                                run_updates(txn, &ops, &idx).await
                            };
                            match grouped {
                                Ok((counts, t)) => {
                                    touched.push(t);
                                    for (&i, n) in idx.iter().zip(counts) {
                                        results[i] = Some(Ok(WriteOutcome::Count(n)));
                                    }
                                }
                                Err(e @ (Error::Busy { .. } | Error::Indeterminate(_))) => return Err(e),
                                // Isolate the failing update(s): one statement each.
                                Err(_) => {
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
                                Err(_) => {
                                    for &i in &idx {
                                        isolated(txn, pg, &ops[i], &mut results[i], &mut touched).await?;
                                    }
                                }
                            }
                        }
                        Step::Updates(idx) => {
                            isolated(txn, pg, &ops[idx[0]], &mut results[idx[0]], &mut touched).await?
                        }
                        Step::One(i) => isolated(txn, pg, &ops[i], &mut results[i], &mut touched).await?,
                    }
                }
                let results = results
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| Err(Error::Database { op: "batch", message: "write not planned".into() }))
                    })
                    .collect();
                Ok((results, touched))
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

/// A group of same-shaped updates in one statement (see [`group_shape`]).
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
    let (counts, parts) = exec::update_grouped(c, model, key, &items, p, 64).await?;
    let reach = match (p, parts) {
        (Some(_), Some(vs)) => Reach::Partitions(vs),
        _ => Reach::Everything,
    };
    Ok((counts, Touched { model, reach }))
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
