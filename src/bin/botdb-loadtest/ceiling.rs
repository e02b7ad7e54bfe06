//! The `ceiling` system: the row-writes of botdb's run (the write calls of as many messages as botdb
//! handled, same tables, row shapes and mix of inserts, updates by key and increments) replayed as fast as
//! the database commits them: the baseline's statements (prepared and cached by the driver), 1,000 writes per
//! transaction, no reads, no cache, the same durability settings; one connection on SQLite, the pool's
//! connections on a server (writes that touch the same rows on the same connection, in order; read committed,
//! a transaction that meets a deadlock run again). What the database itself takes on this disk, measured in
//! the same invocation as the systems it bounds.

use std::time::Instant;

use botdb::sea_orm::{DatabaseConnection, DbErr, IsolationLevel, RuntimeErr, TransactionTrait};
use botdb::{Db, Settings};
use serde::Serialize;

use crate::systems::baseline_call;
use crate::workload::{Call, Shape, T0, flow};
use crate::{BoxError, runner};

/// Writes per transaction.
pub(crate) const PER_TRANSACTION: usize = 1000;

/// The ceiling's figures (JSON `systems.ceiling`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CeilingReport {
    pub row_writes_per_s: f64,
    pub writes: u64,
    pub messages: u64,
    pub connections: usize,
    pub errors: u64,
    /// Rows the committed writes inserted (messages, model calls, actions), and how many were found.
    pub inserted: u64,
    pub rows_verified: u64,
    pub lost_writes: u64,
    pub peak_rss_mb: f64,
}

/// Inserted rows per verified model: messages, model calls, actions.
fn inserts(call: &Call) -> [u64; 3] {
    match call {
        Call::InsertMessage(_) => [1, 0, 0],
        Call::InsertUsage(_) => [0, 1, 0],
        Call::InsertAction(_) => [0, 0, 1],
        _ => [0; 3],
    }
}

/// What one connection committed: writes, inserts per verified model, failed writes.
#[derive(Default)]
struct Done {
    writes: u64,
    inserted: [u64; 3],
    errors: u64,
}

/// Whether a failed statement is a deadlock or serialization failure (SQLSTATE 40001 or 40P01): the
/// transaction is rolled back and run again.
fn transient(e: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(x)) | DbErr::Query(RuntimeErr::SqlxError(x))) = e else { return false };
    x.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40001" || c == "40P01")
}

/// Attempts per transaction that meets a deadlock.
const ATTEMPTS: usize = 10;

/// Runs one transaction of `chunk`: its inserts per verified model, or the failing statement's error.
async fn transaction(conn: &DatabaseConnection, chunk: &[Call], server: bool) -> Result<[u64; 3], (String, DbErr)> {
    // Read committed on a server: MySQL's repeatable read takes gap locks that deadlock independent writers.
    let isolation = server.then_some(IsolationLevel::ReadCommitted);
    let txn = conn.begin_with_config(isolation, None).await.map_err(|e| ("BEGIN".to_owned(), e))?;
    let mut inserted = [0u64; 3];
    for call in chunk {
        if let Err(e) = baseline_call(&txn, call).await {
            let _ = txn.rollback().await;
            return Err((call.op().name().to_owned(), e));
        }
        for (sum, n) in inserted.iter_mut().zip(inserts(call)) {
            *sum += n;
        }
    }
    txn.commit().await.map_err(|e| ("COMMIT".to_owned(), e))?;
    Ok(inserted)
}

/// Runs `calls` (writes only, in their order) on `conn` in transactions of [`PER_TRANSACTION`] writes, each
/// run again after a deadlock. A transaction that still fails is rolled back: its writes are counted as
/// errors and not expected in the database.
async fn replay(conn: &DatabaseConnection, calls: &[Call], server: bool) -> Done {
    let mut done = Done::default();
    for chunk in calls.chunks(PER_TRANSACTION) {
        let mut outcome = transaction(conn, chunk, server).await;
        for _ in 1..ATTEMPTS {
            match &outcome {
                Err((_, e)) if transient(e) => outcome = transaction(conn, chunk, server).await,
                _ => break,
            }
        }
        match outcome {
            Ok(inserted) => {
                done.writes += chunk.len() as u64;
                for (sum, n) in done.inserted.iter_mut().zip(inserted) {
                    *sum += n;
                }
            }
            Err((what, e)) => {
                eprintln!("ceiling: a transaction failed at {what}: {e}");
                done.errors += chunk.len() as u64;
            }
        }
    }
    done
}

/// The connection a write goes to on a server: writes that touch the same rows share one (a message's
/// writes and its chat's stream by chat, an image's counter by image), so transactions of different
/// connections never wait for each other's row locks; the writes of one connection keep their order.
fn lane_of(call: &Call, chat: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    match call {
        Call::IncrementImage(image) => image.hash(&mut h),
        _ => chat.hash(&mut h),
    }
    (h.finish() % lanes as u64) as usize
}

/// Replays the write calls of `messages` messages on the database at `url` (a fresh seeded copy) and
/// verifies the rows they inserted; `seeded` holds the rows of each verified model before.
pub(crate) async fn run(
    settings: Settings,
    shape: Shape,
    messages: u64,
    seeded: [u64; 3],
) -> Result<CeilingReport, BoxError> {
    let server = !settings.database.url.expose().starts_with("sqlite");
    let connections = if server { settings.database.pool_size.max(1) as usize } else { 1 };
    // Each message's writes, as the handler issues them, dealt to the connections by the rows they touch.
    let mut lanes: Vec<Vec<Call>> = vec![Vec::new(); connections];
    for n in 0..messages {
        let mut rng = fastrand::Rng::with_seed(shape.seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let (calls, chat, _) = flow(&shape, n, T0 + n as f64 * 1e-3, &mut rng);
        for call in calls.into_iter().filter(|c| c.op().is_write()) {
            lanes[lane_of(&call, &chat, connections)].push(call);
        }
    }
    let conn = Db::connect_plain(&settings.database).await?;
    let rss = runner::PeakRss::start();
    let started = Instant::now();
    let runs = lanes.iter().map(|calls| replay(&conn, calls, server));
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let peak_rss_mb = rss.stop();
    let mut total = Done::default();
    for d in results {
        total.writes += d.writes;
        total.errors += d.errors;
        for (sum, n) in total.inserted.iter_mut().zip(d.inserted) {
            *sum += n;
        }
    }
    conn.close().await?;
    let mut vs = settings;
    vs.preload.enabled = false;
    let check = Db::open(vs).await?;
    let (mut verified, mut lost) = (0, 0);
    for (i, model) in ["Messages", "LLMUsage", "ActionRecords"].iter().enumerate() {
        let actual = check.count(model, &serde_json::Value::Null).await?;
        verified += actual.saturating_sub(seeded[i]).min(total.inserted[i]);
        lost += (seeded[i] + total.inserted[i]).saturating_sub(actual);
    }
    check.shutdown().await;
    Ok(CeilingReport {
        row_writes_per_s: total.writes as f64 / elapsed.as_secs_f64().max(1e-9),
        writes: total.writes,
        messages,
        connections,
        errors: total.errors,
        inserted: total.inserted.iter().sum(),
        rows_verified: verified,
        lost_writes: lost,
        peak_rss_mb,
    })
}
