//! The writer side of the scheduler: one thread per lane runs the loop that collects a batch, executes it
//! in one transaction, and hands the committed batch to its acknowledger (cache invalidation, then the
//! tickets), in commit order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::data::Changes;
use crate::core::engine::Engine;
use crate::core::registry::{model_index, models};
use crate::core::value::Cell;
use crate::optimization::cache::WindowEdits;
use crate::optimization::partition::{Reach, Touched};
use crate::utils::error::{Error, Result};

use super::executor;
use super::ops::{Progress, Stage, WriteOp, WriteOutcome};
use super::queue::Queued;
use super::scheduler::{Job, Shared, collect, fail_queued, lock};

/// Runs a writer loop on its own thread with its own single-threaded runtime. A writer task on the caller's
/// runtime waited behind every runnable caller task at each of its statements and at COMMIT (measured: a
/// 30-write batch took 7–8 ms under the load harness, most of it queueing); on its own thread each step is
/// picked up as soon as the database answers. Returns the signal sent once the writer has its connection
/// (or why it has none) and the signal sent when the loop ends.
pub(super) fn spawn_writer(
    i: usize,
    shared: Arc<Shared>,
) -> Result<(oneshot::Receiver<Result<()>>, oneshot::Receiver<()>)> {
    let (done, finished) = oneshot::channel();
    let (up, ready) = oneshot::channel();
    let started = std::thread::Builder::new().name(format!("botdb-writer-{i}")).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(async {
                // PostgreSQL/MySQL: a pool of this runtime's own for the writes (see `dedicated_writer`).
                match shared.engine.dedicated_writer(1).await {
                    Ok(engine) => {
                        let _ = up.send(Ok(()));
                        writer_loop(shared.clone(), engine.clone(), i).await;
                        if engine.backend() != sea_orm::DbBackend::Sqlite
                            && let Err(e) = engine.writer().clone().close().await
                        {
                            tracing::warn!(error = %e, "closing the writer's pool failed");
                        }
                    }
                    Err(e) => {
                        shared.closed.store(true, Ordering::Release);
                        fail_queued(&shared, "the batch writer could not connect");
                        let _ = up.send(Err(e));
                    }
                }
            }),
            Err(e) => {
                shared.closed.store(true, Ordering::Release);
                fail_queued(&shared, "the batch writer could not start");
                let _ = up.send(Err(Error::Database { op: "start writer", message: e.to_string() }));
            }
        }
        let _ = done.send(());
    });
    match started {
        Ok(_) => Ok((ready, finished)),
        Err(e) => Err(Error::Database { op: "start writer", message: format!("cannot start a writer thread: {e}") }),
    }
}

/// The lane (writer) of a model's writes. One lane per model keeps every caller's writes to a model in
/// submission order even with several writers, so dependent writes (an insert, then an update of that
/// row) may be submitted without awaiting the first; different models still commit in parallel.
pub(super) fn lane_of(model_idx: usize, lanes: usize) -> usize {
    model_idx % lanes.max(1)
}

/// The batch size from which the next collection grants the grace (below it, writes run at once).
const GRACE_FROM_BATCH: usize = 8;

async fn writer_loop(s: Arc<Shared>, engine: Engine, lane: usize) {
    // Acknowledging a committed batch (cache invalidation, window carrying, tickets) runs in its own task
    // on the callers' runtime (`Shared::acks`), in commit order, while this loop already runs the next
    // batch (measured: 3 ms of 11 per batch under the load harness; on this thread it only stretched the
    // next flush). Its Redis round trip is read by a connection driven from a thread of its own
    // (`cache/redis.rs`): driven from the callers' runtime, a 0.36 ms bump took 3.5 ms at full load.
    // With nothing queued behind a batch there is nothing to overlap: it is acknowledged right here, which
    // saves the hop to the acknowledger (about 50 µs of a lone write's acknowledgement), provided no earlier
    // batch is still being acknowledged (commit order).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Executed>();
    let handed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acker = {
        let (acks, handed) = (s.clone(), handed.clone());
        let task = async move {
            let s = acks;
            while let Some(done) = rx.recv().await {
                acknowledge(&s, done).await;
                s.lanes[lane].acknowledged();
                handed.fetch_sub(1, Ordering::AcqRel);
            }
        };
        s.acks.spawn(task)
    };
    let mut busy_until = Instant::now();
    let mut last_batch = 0;
    loop {
        let (target, max, linger, grace) = {
            let c = lock(&s.controller);
            (c.target(), c.max_batch(), c.linger(), c.min_linger())
        };
        // The grace after a flush only pays under concurrency (the writers it answered join the next batch);
        // at low load it would only delay the writes that queued meanwhile.
        let grace = if last_batch >= GRACE_FROM_BATCH { grace } else { Duration::ZERO };
        let batch =
            collect(&s.lanes[lane], (target, max), (linger, grace), busy_until, &s.closed, &s.urgent[lane]).await;
        if batch.is_empty() {
            break;
        }
        last_batch = batch.len();
        let done = run_batch(&engine, batch).await;
        s.lanes[lane].committed();
        lock(&s.controller).observe(done.elapsed, done.waiters.len(), s.lanes[lane].len());
        if s.lanes[lane].len() == 0 && handed.load(Ordering::Acquire) == 0 {
            acknowledge(&s, done).await;
            s.lanes[lane].acknowledged();
        } else {
            handed.fetch_add(1, Ordering::AcqRel);
            if let Err(unsent) = tx.send(done) {
                acknowledge(&s, unsent.0).await;
                s.lanes[lane].acknowledged();
            }
        }
        busy_until = Instant::now();
    }
    drop(tx);
    let _ = acker.await;
}

/// Merges what a batch touched into one entry per model.
pub(crate) fn merge(touched: Vec<Touched>) -> Vec<Touched> {
    let mut by_model: Vec<Option<Touched>> = models().iter().map(|_| None).collect();
    for t in touched {
        let slot = &mut by_model[model_index(t.model)];
        match (slot.as_mut(), t.reach) {
            (None, reach) => *slot = Some(Touched { model: t.model, reach }),
            (Some(cur), Reach::Everything) => cur.reach = Reach::Everything,
            (Some(Touched { reach: Reach::Partitions(vs), .. }), Reach::Partitions(more)) => vs.extend(more),
            (Some(_), Reach::Partitions(_)) => {}
        }
    }
    by_model.into_iter().flatten().collect()
}

/// What the committed writes of a batch did, for the cache to replay on cached entries:
/// (write, its result, the value an increment left).
fn window_edits<'a>(
    done: impl Iterator<Item = ((&'a WriteOp, &'a Result<WriteOutcome>), &'a Option<Cell>)>,
) -> WindowEdits {
    let mut edits = WindowEdits::default();
    for ((op, r), after) in done {
        match (op, r, after) {
            // A failed write changed nothing.
            (_, Err(_), _) => {}
            (WriteOp::Insert(_), Ok(WriteOutcome::Row(row)), _) => edits.insert(op.model(), Arc::new(row.clone())),
            (WriteOp::Update { filter, changes }, Ok(_), _) => edits.update(filter, changes),
            (WriteOp::Save { .. }, Ok(WriteOutcome::Row(row)), _) => edits.saved(op.model(), Arc::new(row.clone())),
            // An increment that left one row's value: replayed as setting that value, which (unlike adding
            // the delta again) is idempotent.
            (WriteOp::Increment { model, filter, column, .. }, Ok(_), Some(v)) => {
                edits.update(filter, &Changes { model, sets: vec![(*column, v.clone())] });
            }
            (_, Ok(_), _) => edits.opaque(op.model()),
        }
    }
    edits
}

/// The caller's side of a write taken into a batch: where its answer goes, its place in the read-your-writes
/// bookkeeping, and the queue capacity it holds until answered.
struct Waiter {
    /// The ticket's other end.
    tx: oneshot::Sender<Result<WriteOutcome>>,
    /// Submission sequence number (its entry in `Shared::pending`).
    seq: u64,
    /// The model's index.
    model: usize,
    /// The write's stage, when a session watches it.
    progress: Option<Arc<Progress>>,
    /// Queue capacity (count and bytes), released when this drops.
    _held: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// A batch that ran: its writes, their callers, and the outcome of its transaction.
pub(super) struct Executed {
    ops: Arc<Vec<WriteOp>>,
    waiters: Vec<Waiter>,
    outcome: Result<executor::BatchResult>,
    elapsed: std::time::Duration,
    lingered: std::time::Duration,
}

/// Runs one batch in one transaction.
pub(super) async fn run_batch(engine: &Engine, batch: Vec<Queued<Job>>) -> Executed {
    for q in &batch {
        metrics::gauge!(crate::utils::metrics::BATCH_QUEUE_DEPTH, "priority" => q.priority.label()).decrement(1.0);
    }
    let lingered = batch.iter().map(|q| q.at).min().map(|t| t.elapsed()).unwrap_or_default();
    let mut ops = Vec::with_capacity(batch.len());
    let mut waiters = Vec::with_capacity(batch.len());
    for q in batch {
        let m = model_index(q.item.op.model());
        let held = (q.item._count, q.item._bytes);
        waiters.push(Waiter { tx: q.item.tx, seq: q.seq, model: m, progress: q.item.progress, _held: held });
        ops.push(q.item.op);
    }
    let started = std::time::Instant::now();
    let ops = Arc::new(ops);
    let watched: Vec<Arc<Progress>> = waiters.iter().filter_map(|w| w.progress.clone()).collect();
    let outcome = executor::execute(engine, ops.clone(), &watched).await;
    let elapsed = started.elapsed();
    metrics::histogram!(crate::utils::metrics::BATCH_FLUSH_SECONDS).record(elapsed.as_secs_f64());
    metrics::histogram!(crate::utils::metrics::BATCH_ROWS).record(waiters.len() as f64);
    metrics::histogram!(crate::utils::metrics::BATCH_LINGER_SECONDS).record(lingered.as_secs_f64());
    Executed { ops, waiters, outcome, elapsed, lingered }
}

/// After COMMIT: makes stale cache entries unreachable (and carries windows), then resolves the tickets.
/// (Acknowledging the batches that committed meanwhile together, in one pass, was tried: the long pass
/// stalled the callers' runtime and doubled the read p99 on PostgreSQL for no throughput.)
pub(super) async fn acknowledge(s: &Shared, mut done: Executed) {
    if let Ok(b) = &mut done.outcome {
        // Committed: make stale cache entries unreachable before anyone hears `Ok`.
        let invalidating = std::time::Instant::now();
        let edits = window_edits(done.ops.iter().zip(&b.results).zip(&b.after));
        s.cache.publish(&merge(std::mem::take(&mut b.touched)), Some(&edits)).await;
        let invalidated = invalidating.elapsed();
        s.stats.invalidate_micros.fetch_add(invalidated.as_micros() as u64, Ordering::Relaxed);
        metrics::histogram!(crate::utils::metrics::BATCH_INVALIDATE_SECONDS).record(invalidated.as_secs_f64());
    }
    answer(s, done);
    *lock(&s.last_flush) = Some(std::time::Instant::now());
    s.done.notify_waiters();
}

/// Counts a batch whose cache work is done and resolves its tickets.
fn answer(s: &Shared, done: Executed) {
    let Executed { waiters, outcome, elapsed, lingered, .. } = done;
    let n = waiters.len();
    let c = &s.stats;
    match outcome {
        Ok(executor::BatchResult { results, isolated, folded, .. }) => {
            c.last_batch_failed.store(false, Ordering::Release);
            c.isolated_writes.fetch_add(isolated as u64, Ordering::Relaxed);
            c.folded_writes.fetch_add(folded as u64, Ordering::Relaxed);
            metrics::counter!(crate::utils::metrics::BATCH_ISOLATED_WRITES_TOTAL).increment(isolated as u64);
            let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.flush_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
            c.linger_micros.fetch_add(lingered.as_micros() as u64, Ordering::Relaxed);
            c.rows_committed.fetch_add(ok, Ordering::Relaxed);
            c.rows_rejected.fetch_add(n as u64 - ok, Ordering::Relaxed);
            c.last_batch_rows.store(n as u64, Ordering::Relaxed);
            if n > 1 {
                c.rows_in_multi_row_batches.fetch_add(ok, Ordering::Relaxed);
            }
            metrics::counter!(crate::utils::metrics::ROWS_COMMITTED_TOTAL).increment(ok);
            metrics::counter!(crate::utils::metrics::ROWS_REJECTED_TOTAL).increment(n as u64 - ok);
            for (w, r) in waiters.into_iter().zip(results) {
                if let Some(p) = &w.progress {
                    p.set(if r.is_ok() { Stage::Published } else { Stage::Failed });
                }
                lock(&s.pending[w.model]).remove(&w.seq);
                let _ = w.tx.send(r);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = n, "batch failed");
            c.failed_batches.fetch_add(1, Ordering::Relaxed);
            c.last_batch_failed.store(true, Ordering::Release);
            c.rows_rejected.fetch_add(n as u64, Ordering::Relaxed);
            metrics::counter!(crate::utils::metrics::ROWS_REJECTED_TOTAL).increment(n as u64);
            for w in waiters {
                if let Some(p) = &w.progress {
                    p.set(Stage::Failed);
                }
                lock(&s.pending[w.model]).remove(&w.seq);
                let _ = w.tx.send(Err(e.clone()));
            }
        }
    }
}
