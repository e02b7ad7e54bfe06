//! Metrics and health: a local recorder sees the key metric names of a read, a write and a flush.

use std::collections::HashSet;

use botdb::{Db, HealthStatus, PartState, Settings};
use metrics_util::debugging::DebuggingRecorder;
use serde_json::json;

#[test]
fn a_read_a_write_and_a_flush_emit_the_key_metrics() {
    // Global, not thread-local: the batch writer runs on its own thread. No other test installs one.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("no other recorder is installed in this test binary");
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut s = Settings::for_url(format!("sqlite://{}/m.sqlite?mode=rwc", dir.path().display()));
            s.database.sqlite_synchronous = botdb::Synchronous::Normal;
            let db = Db::open(s).await.unwrap();
            db.create("PersonInfo", &json!({"person_id": "p", "platform": "qq", "user_id": "1"})).await.unwrap();
            db.find_one("PersonInfo", &json!({"person_id": "p"}), &[]).await.unwrap();
            // A key never written: a load.
            db.find_one("PersonInfo", &json!({"person_id": "cold"}), &[]).await.unwrap();
            db.flush().await;
            let h = db.health().await;
            assert_eq!((h.status, h.database, h.redis), (HealthStatus::Ok, PartState::Up, PartState::Absent));
            assert!(h.last_flush_age_ms.is_some());
            db.cache_stats();
            db.shutdown().await;
        });
    }
    let names: HashSet<String> =
        snapshotter.snapshot().into_vec().into_iter().map(|(k, ..)| k.key().name().to_owned()).collect();
    for name in [
        "botdb_cache_requests_total",
        "botdb_cache_hits_total",
        "botdb_cache_loads_total",
        "botdb_cache_entries",
        "botdb_batch_queue_depth",
        "botdb_batch_rows",
        "botdb_batch_flush_seconds",
        "botdb_batch_linger_seconds",
        "botdb_rows_committed_total",
        "botdb_query_duration_seconds",
        "botdb_pool_connections",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(names.iter().all(|n| n.starts_with("botdb_")), "{names:?}");
}

/// `health` says degraded while writes fail (another connection holds SQLite's write lock), though reads
/// still work, and ok again once a write commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_degraded_while_writes_fail() {
    use botdb::sea_orm::{ConnectOptions, ConnectionTrait, Database};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/h.sqlite?mode=rwc", dir.path().display());
    let mut s = botdb::Settings::for_url(url.clone());
    s.database.busy_timeout_ms = 50;
    s.database.retry_attempts = 1;
    let db = botdb::Db::open(s).await.unwrap();
    let person = |id: &str| serde_json::json!({"person_id": id, "platform": "qq", "user_id": id});
    db.create("PersonInfo", &person("p0")).await.unwrap();
    let h = db.health().await;
    assert_eq!((h.status, h.writes), (botdb::HealthStatus::Ok, botdb::PartState::Up));
    let mut opt = ConnectOptions::new(url);
    opt.max_connections(1).min_connections(1);
    let holder = Database::connect(opt).await.unwrap();
    holder.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    assert!(db.create("PersonInfo", &person("p1")).await.is_err(), "the write lock is held elsewhere");
    let h = db.health().await;
    assert_eq!(
        (h.status, h.database, h.writes),
        (botdb::HealthStatus::Degraded, botdb::PartState::Up, botdb::PartState::Degraded)
    );
    holder.execute_unprepared("COMMIT").await.unwrap();
    db.create("PersonInfo", &person("p2")).await.unwrap();
    assert_eq!(db.health().await.status, botdb::HealthStatus::Ok);
    db.shutdown().await;
}
