//! Executes one batch in one transaction, step by step as the planner (`plan.rs`) grouped it: inserts of a
//! model in multi-row `INSERT`s (rows in index order, chunked under the bind-parameter limit), same-shaped
//! updates, summed increments and upserts in grouped statements (`grouped.rs`), any other write alone. A
//! failing write is isolated (a failed multi-row insert is retried row by row; on PostgreSQL, where any error
//! aborts the transaction, the batch runs again with each step in a savepoint): only its own result is an
//! error. Busy/locked errors fail the whole attempt so the engine retries the batch.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use serde_json::Value;

use crate::core::engine::Engine;
use crate::core::exec::{self, Select};
use crate::core::filter::Filter;
use crate::core::value::{Cell, Row};
use crate::optimization::partition::{Touched, inserted, reach_from, reach_of, returning_partition};
use crate::utils::error::{Error, Result};

use super::grouped::{Saved, run_increments, run_saves, run_updates};
use super::ops::{Progress, Stage, WriteOp, WriteOutcome};
use super::plan::{Folds, Plan, Step, increment_key, plan};

/// What one committed batch answers.
#[derive(Debug)]
pub struct BatchResult {
    /// One result per write, in submission order.
    pub results: Vec<Result<WriteOutcome>>,
    /// What the batch touched (for cache invalidation).
    pub touched: Vec<Touched>,
    /// Writes that ran alone because the grouped statement holding them failed (a poisoned row).
    pub isolated: usize,
    /// Per write: for an increment whose key matched exactly one row, the column's value after the
    /// batch's increments of that key (what the cache writes through); `None` otherwise.
    pub after: Vec<Option<Cell>>,
    /// Writes folded into the batch's inserts.
    pub folded: usize,
}

/// The index order of a row: its partition (chat, …), then its time.
fn index_key(op: &WriteOp) -> (String, f64) {
    let WriteOp::Insert(r) = op else { return (String::new(), 0.0) };
    let part = r.model.partition.map(|p| match &r.cells[p] {
        Cell::Text(s) => s.clone(),
        other => other.to_json().to_string(),
    });
    // The model's order column (a registry annotation: a FLOAT time).
    let time = r.model.order.and_then(|i| if let Cell::Float(f) = r.cells[i] { Some(f) } else { None });
    (part.unwrap_or_default(), time.unwrap_or(0.0))
}

/// Runs `ops` in one write transaction and commits it.
///
/// # Errors
/// Errors of the whole batch: [`Error::Busy`] after retries, [`Error::Indeterminate`] when COMMIT failed, or
/// a database error that is not any one write's fault.
pub async fn execute(engine: &Engine, ops: Arc<Vec<WriteOp>>, watched: &[Arc<Progress>]) -> Result<BatchResult> {
    // Every write commits with an explicit COMMIT, even a lone one: in autocommit, SQLite commits an
    // `INSERT … RETURNING` when the statement is reset, after the driver has its row, and a commit that
    // fails there (a full disk) went unseen: the write was acknowledged and rolled back (found with
    // `scripts/faults.sh disk-full`; test `errors::writes_after_a_full_disk_are_durable`).
    // PostgreSQL aborts a transaction at its first error, so a failing write needs a savepoint around its
    // step to fail alone; two round trips per step that almost never pay. The batch runs without them, and
    // only when a write fails does it run again with them (the failed attempt is rolled back whole). A batch
    // whose writes were folded into its inserts (`plan::fold_into_inserts`) cannot isolate a failing write
    // either (the folded writes' answers count rows that would then not exist): on any write's error it
    // runs again without folding.
    let pg = engine.backend() == DbBackend::Postgres;
    let first = Mode { savepoints: false, absorb: !pg, fold: true };
    match in_transaction(engine, ops.clone(), watched, first).await {
        Err(e) if !matches!(e, Error::Busy { .. } | Error::Indeterminate(_)) => {
            tracing::debug!(error = %e, "a write of the batch failed; running it again, each write isolated");
            in_transaction(engine, ops, watched, Mode { savepoints: pg, absorb: true, fold: false }).await
        }
        other => other,
    }
}

/// How a batch's steps meet a failing write.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Each step in a savepoint (PostgreSQL: an error aborts the transaction otherwise).
    savepoints: bool,
    /// A failing write fails alone (its group isolated) and the batch goes on; else its error aborts the
    /// attempt. (Never once writes were folded.)
    absorb: bool,
    /// Fold updates and increments into the batch's inserts.
    fold: bool,
}

/// Runs `ops` in one write transaction as `mode` says, and commits it.
async fn in_transaction(
    engine: &Engine,
    ops: Arc<Vec<WriteOp>>,
    watched: &[Arc<Progress>],
    mode: Mode,
) -> Result<BatchResult> {
    engine
        .write("batch", move |txn| {
            let ops = ops.clone();
            let watched = watched.to_vec();
            Box::pin(async move {
                let backend = txn.get_database_backend();
                let mut results: Vec<Option<Result<WriteOutcome>>> = (0..ops.len()).map(|_| None).collect();
                let mut touched = Vec::new();
                let mut after: Vec<Option<Cell>> = vec![None; ops.len()];
                let mut isolated_writes = 0;
                let Plan { steps, folds } = plan(&ops, backend == DbBackend::MySql, mode.fold);
                let mode = Mode { absorb: mode.absorb && folds.rows.is_empty(), ..mode };
                for step in steps {
                    let started = std::time::Instant::now();
                    let (kind, members) = (step.kind(), step.members().len());
                    let mut slots = Slots { results: &mut results, touched: &mut touched, after: &mut after };
                    isolated_writes += run_step(txn, mode, &ops, step, &folds, &mut slots).await?;
                    tracing::trace!(kind, members, micros = started.elapsed().as_micros() as u64, "batch step");
                }
                count_folded(&folds, &mut results, &mut after);
                // The statements ran; COMMIT follows: a session's read can no longer tell whether it sees
                // these writes until they are published.
                for p in &watched {
                    p.set(Stage::Committing);
                }
                let results = results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(Error::internal("a write of the batch was not planned"))))
                    .collect();
                let folded = folds.hits.len();
                Ok(BatchResult { results, touched, isolated: isolated_writes, after, folded })
            })
        })
        .await
}

/// Adds to the answers of the folded writes the inserted rows they matched (their statements saw only the
/// rows already in the table), and gives a folded increment that matched one row in all the value it left
/// there.
fn count_folded(folds: &Folds, results: &mut [Option<Result<WriteOutcome>>], after: &mut [Option<Cell>]) {
    for (&j, hits) in &folds.hits {
        if let Some(Ok(WriteOutcome::Count(n))) = &mut results[j] {
            let in_table = *n;
            *n += hits.len() as u64;
            after[j] = if in_table == 0 && hits.len() == 1 { folds.after.get(&j).cloned() } else { None };
        }
    }
}

/// Where a batch's steps record each write's answer and what it touched.
struct Slots<'a> {
    results: &'a mut [Option<Result<WriteOutcome>>],
    touched: &'a mut Vec<Touched>,
    after: &'a mut [Option<Cell>],
}

/// Runs one planned step; returns how many writes had to be isolated because their group failed. Only a
/// busy or indeterminate error is returned (and, when `mode` does not absorb them, any write's error): it
/// aborts the attempt.
async fn run_step(
    txn: &sea_orm::DatabaseTransaction,
    mode: Mode,
    ops: &[WriteOp],
    step: Step,
    folds: &Folds,
    slots: &mut Slots<'_>,
) -> Result<usize> {
    let idx = match &step {
        Step::One(i) => vec![*i],
        Step::Inserts(idx) => in_index_order(ops, idx.clone()),
        other => other.members().to_vec(),
    };
    // One write (or a lone update, increment or upsert): its own statement(s).
    if idx.len() == 1 && !matches!(step, Step::Inserts(_)) || matches!(step, Step::One(_)) {
        isolated(txn, mode, &ops[idx[0]], idx[0], slots).await?;
        return Ok(0);
    }
    let run = async |c: &sea_orm::DatabaseTransaction| run_group(c, &step, ops, &idx, folds).await;
    let grouped = if mode.savepoints { guarded(txn, run).await } else { run(txn).await };
    match grouped {
        Ok((done, after)) => {
            for (&i, (out, t)) in idx.iter().zip(done) {
                slots.touched.extend(t);
                slots.results[i] = Some(out);
            }
            for (&i, a) in idx.iter().zip(after) {
                slots.after[i] = a;
            }
            Ok(0)
        }
        Err(e @ (Error::Busy { .. } | Error::Indeterminate(_))) => Err(e),
        Err(e) if !mode.absorb => Err(e),
        // Each write alone again, one statement each (a write of the failed group that already ran set the
        // same values again: harmless). In submission order: of two inserts of one unique key, the first wins.
        Err(e) => {
            tracing::debug!(error = %e, kind = step.kind(), writes = idx.len(), "grouped statement failed; isolating");
            let mut alone = idx;
            alone.sort_unstable();
            for &i in &alone {
                isolated(txn, mode, &ops[i], i, slots).await?;
            }
            Ok(alone.len())
        }
    }
}

/// Inserts in index order: their partition (chat, …), then their time.
fn in_index_order(ops: &[WriteOp], mut idx: Vec<usize>) -> Vec<usize> {
    idx.sort_by(|&a, &b| {
        let (ka, kb) = (index_key(&ops[a]), index_key(&ops[b]));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    idx
}

/// The writes `idx` of one group in shared statements: each write's answer and what it touched, and for
/// increments the values they left (see [`BatchResult::after`]; empty for other groups).
async fn run_group<C: ConnectionTrait>(
    c: &C,
    step: &Step,
    ops: &[WriteOp],
    idx: &[usize],
    folds: &Folds,
) -> Result<(Vec<Saved>, Vec<Option<Cell>>)> {
    let counts = |counts: Vec<u64>, t: Touched| -> Vec<Saved> {
        // The group's reach goes with its first write (the batch merges them anyway).
        let mut t = Some(t);
        counts.into_iter().map(|n| (Ok(WriteOutcome::Count(n)), t.take().into_iter().collect())).collect()
    };
    match step {
        Step::Inserts(_) => {
            // A row later writes were folded into is written as they left it, and answered as submitted.
            let rows: Vec<_> = idx
                .iter()
                .filter_map(|&i| match (folds.rows.get(&i), &ops[i]) {
                    (Some(folded), _) => Some(folded.clone()),
                    (None, WriteOp::Insert(r)) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            let done = exec::insert_many(c, &rows).await?;
            let saved = idx
                .iter()
                .zip(done)
                .map(|(&i, row)| {
                    let row = match (folds.rows.contains_key(&i), &ops[i], row.get("id").and_then(Value::as_i64)) {
                        (true, WriteOp::Insert(submitted), Some(id)) => submitted.to_row(id),
                        _ => row,
                    };
                    let t = inserted(ops[i].model(), &row);
                    (Ok(WriteOutcome::Row(row)), vec![t])
                })
                .collect();
            Ok((saved, Vec::new()))
        }
        Step::Updates(_) => run_updates(c, ops, idx).await.map(|(n, t)| (counts(n, t), Vec::new())),
        Step::Increments(_) => run_increments(c, ops, idx).await.map(|(n, t, after)| (counts(n, t), after)),
        Step::Saves(_) => Ok((run_saves(c, ops, idx).await?, Vec::new())),
        Step::One(i) => Err(Error::internal(format!("write {i} is not a group"))),
    }
}

/// Runs write `i` alone (in a savepoint when `mode` says) and records its result in `slots`. Only a busy
/// error is returned (and, when `mode` does not absorb them, the write's own error): it aborts the attempt.
async fn isolated(
    txn: &sea_orm::DatabaseTransaction,
    mode: Mode,
    op: &WriteOp,
    i: usize,
    slots: &mut Slots<'_>,
) -> Result<()> {
    let run = async || {
        if mode.savepoints { guarded(txn, async |c| run_one(c, op).await).await } else { run_one(txn, op).await }
    };
    let mut one = run().await;
    // A concurrent insert of the same unique key (another process): now it is an update.
    if mode.absorb && matches!((&one, op), (Err(Error::Constraint { .. }), WriteOp::Save { unique: true, .. })) {
        one = run().await;
    }
    match one {
        Ok((out, t, after)) => {
            slots.touched.extend(t);
            slots.results[i] = Some(Ok(out));
            slots.after[i] = after;
            Ok(())
        }
        Err(e @ Error::Busy { .. }) => Err(e),
        Err(e) if !mode.absorb => Err(e),
        Err(e) => {
            slots.results[i] = Some(Err(e));
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

/// One non-grouped write: its answer, what it touched and, for an increment, the value it left (see
/// [`BatchResult::after`]).
async fn run_one<C: ConnectionTrait>(c: &C, op: &WriteOp) -> Result<(WriteOutcome, Vec<Touched>, Option<Cell>)> {
    // An increment by one key where `RETURNING` exists: the grouped statement's shape with one arm, which
    // also returns the value it left.
    if increment_key(op).is_some() && c.get_database_backend() != DbBackend::MySql {
        let (n, t, after) = run_increments(c, std::slice::from_ref(op), &[0]).await?;
        return Ok((WriteOutcome::Count(n[0]), vec![t], after.into_iter().next().flatten()));
    }
    let (out, touched) = run_other(c, op).await?;
    Ok((out, touched, None))
}

/// [`run_one`] for everything but increments by one key.
async fn run_other<C: ConnectionTrait>(c: &C, op: &WriteOp) -> Result<(WriteOutcome, Vec<Touched>)> {
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
            let sel = Select { model, filter: key.clone(), order: vec![(0, false)], limit: Some(1), offset: 0 };
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
