//! The read cache: coherence after writes (point reads, queries, recent-history windows) on every backend;
//! single-flight; the fill race; negative caching; TTL and the memory bound; two handles sharing Redis; a
//! frozen Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use botdb::testing::Select;
use botdb::testing::{Cache, Loader};
use botdb::testing::{Reach, Touched};
use botdb::{Db, Row, Settings};
use botdb::{PartState, model};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(
    forgetting_a_model_or_a_chat_shows_outside_changes,
    writes_are_seen_by_the_next_read,
    recent_history_window_sees_every_write,
    carried_windows_equal_fresh_loads
);

fn msg(id: &str, chat: &str, time: f64) -> Value {
    json!({"message_id": id, "time": time, "chat_id": chat, "chat_info_stream_id": chat, "chat_info_platform": "qq",
        "chat_info_user_platform": "qq", "chat_info_user_id": "u", "chat_info_user_nickname": "n",
        "chat_info_create_time": 0.0, "chat_info_last_active_time": 0.0})
}

fn person(id: &str) -> Value {
    json!({"person_id": id, "platform": "qq", "user_id": "1"})
}

async fn writes_are_seen_by_the_next_read(t: &TestDb) {
    let db = &t.db;
    // Point read by natural key, cached empty (negative), then created.
    assert!(db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().is_none());
    assert!(db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().is_none());
    db.create("PersonInfo", &person("p1")).await.unwrap();
    let p = db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap();
    assert_eq!(p["person_id"], json!("p1"));
    // Update through a filter that does not name the key: the reach is learned, the entry invalidated.
    let id = p["id"].clone();
    db.update("PersonInfo", &json!({"id": id}), &json!({"nickname": "new"})).await.unwrap();
    let p = db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap();
    assert_eq!(p["nickname"], json!("new"));
    // Point read by id and a query result over the whole table.
    assert_eq!(db.find("PersonInfo", &json!({"id": id}), &[], None).await.unwrap()[0]["nickname"], json!("new"));
    assert_eq!(db.find("PersonInfo", &json!({}), &[], None).await.unwrap().len(), 1);
    db.create("PersonInfo", &person("p2")).await.unwrap();
    assert_eq!(db.find("PersonInfo", &json!({}), &[], None).await.unwrap().len(), 2);
    db.save("PersonInfo", &json!({"nickname": "saved"}), Some(("person_id", &json!("p2")))).await.unwrap();
    let rows = db.find("PersonInfo", &json!({"nickname": {"$ne": null}}), &["person_id"], None).await.unwrap();
    assert_eq!(rows.iter().map(|r| r["nickname"].clone()).collect::<Vec<_>>(), [json!("new"), json!("saved")]);
    db.delete("PersonInfo", &json!({"person_id": "p1"})).await.unwrap();
    assert!(db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().is_none());
    assert_eq!(db.find("PersonInfo", &json!({}), &[], None).await.unwrap().len(), 1);
    // A model without a partition column (every write reaches everything).
    db.create("BanUser", &json!({"platform": "qq", "user_id": "9", "reason": "r"})).await.unwrap();
    assert_eq!(db.count("BanUser", &json!({})).await.unwrap(), 1);
    assert_eq!(db.find("BanUser", &json!({}), &[], None).await.unwrap().len(), 1);
    db.update("BanUser", &json!({}), &json!({"violation_num": 3})).await.unwrap();
    assert_eq!(db.find("BanUser", &json!({}), &[], None).await.unwrap()[0]["violation_num"], json!(3));
    let s = db.cache_stats();
    assert!(s.requests > 0 && s.l1_hits > 0, "{s:?}");
}

async fn recent_history_window_sees_every_write(t: &TestDb) {
    let db = &t.db;
    for i in 0..30 {
        db.create("Messages", &msg(&format!("a{i}"), "chat-a", i as f64)).await.unwrap();
        db.create("Messages", &msg(&format!("b{i}"), "chat-b", i as f64)).await.unwrap();
    }
    let recent = |before: f64| async move {
        let rows = db
            .find("Messages", &json!({"chat_id": "chat-a", "time": {"$lt": before}}), &["-time"], Some(8))
            .await
            .unwrap();
        rows.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(recent(100.0).await[0], "a29");
    assert_eq!(recent(10.0).await, (2..10).rev().map(|i| format!("a{i}")).collect::<Vec<_>>());
    let before = db.cache_stats();
    assert_eq!(recent(20.0).await[0], "a19");
    assert!(db.cache_stats().window_hits > before.window_hits, "answered from the chat's window");
    // The reply path: write the incoming message, then read the history: it is there.
    for i in 30..40 {
        db.create("Messages", &msg(&format!("a{i}"), "chat-a", i as f64)).await.unwrap();
        assert_eq!(recent(1000.0).await[0], format!("a{i}"));
    }
    // A write to another chat does not invalidate this chat's window.
    let hits = db.cache_stats().window_hits;
    db.create("Messages", &msg("b-new", "chat-b", 99.0)).await.unwrap();
    recent(1000.0).await;
    assert!(db.cache_stats().window_hits > hits);
    // An update by message_id (the filter names no chat) reaches the window.
    db.update("Messages", &json!({"message_id": "a39"}), &json!({"time": 5.5})).await.unwrap();
    assert_eq!(recent(1000.0).await[0], "a38");
    assert!(recent(6.0).await.contains(&"a39".to_owned()));
    // Older than the window holds: answered by the database, correctly.
    assert_eq!(recent(1.0).await, ["a0"]);
}

/// The cached answer of `sel` and what the database holds, compared.
async fn same_as_database(db: &Db, filter: Value, limit: Option<u64>) {
    let m = model("Messages").unwrap();
    let sel = Select::parse(m, &filter, &["-time".to_owned()], limit).unwrap();
    let fresh = botdb::testing::exec::select(botdb::testing::engine(db).reader(), &sel).await.unwrap();
    let cached = db.find("Messages", &filter, &["-time"], limit).await.unwrap();
    let cached: Vec<Row> = cached.iter().map(|r| (**r).clone()).collect();
    assert_eq!(cached, fresh, "cached {filter} (limit {limit:?}) differs from the database");
}

/// Concurrent inserts (new, late and very old), grouped updates by message_id and id rewrites share batches;
/// after each round the
/// chat's window (carried across the commits, not reloaded) equals a fresh load, and so do range reads
/// without a limit answered from it.
async fn carried_windows_equal_fresh_loads(t: &TestDb) {
    let db = &t.db;
    for i in 0..20 {
        db.create("Messages", &msg(&format!("w{i}"), "chat-w", i as f64)).await.unwrap();
    }
    same_as_database(db, json!({"chat_id": "chat-w"}), Some(64)).await;
    for round in 0..6 {
        let base = 20 + round * 10;
        let mut writes: Vec<futures_util::future::BoxFuture<'_, ()>> = Vec::new();
        for k in 0..10 {
            let i = base + k;
            writes.push(Box::pin(async move {
                db.create("Messages", &msg(&format!("w{i}"), "chat-w", i as f64)).await.unwrap();
            }));
            // Existing rows: interest updates (grouped) and a rewrite of an id.
            let old = format!("w{}", i - 10);
            writes.push(Box::pin(async move {
                db.update(
                    "Messages",
                    &json!({"message_id": old}),
                    &json!({"interest_value": i as f64, "should_reply": true}),
                )
                .await
                .unwrap();
            }));
        }
        let from = format!("w{}", base - 15);
        writes.push(Box::pin(async move {
            db.update("Messages", &json!({"message_id": from}), &json!({"message_id": format!("echo{round}")}))
                .await
                .unwrap();
        }));
        // Late arrivals: one in the middle of the window, one older than anything it holds.
        writes.push(Box::pin(async move {
            db.create("Messages", &msg(&format!("late{round}"), "chat-w", base as f64 - 4.5)).await.unwrap();
        }));
        writes.push(Box::pin(async move {
            db.create("Messages", &msg(&format!("old{round}"), "chat-w", 0.25 + round as f64 * 0.01)).await.unwrap();
        }));
        futures_util::future::join_all(writes).await;
        same_as_database(db, json!({"chat_id": "chat-w"}), Some(64)).await;
        same_as_database(db, json!({"chat_id": "chat-w", "time": {"$lt": base as f64 + 5.0}}), Some(8)).await;
        same_as_database(db, json!({"chat_id": "chat-w", "time": {"$gte": base as f64 - 12.0}}), None).await;
    }
    let s = db.cache_stats();
    assert!(s.windows_carried > 0, "windows were carried across commits: {s:?}");
    assert!(s.window_hits > 0, "{s:?}");
}

fn settings_for(dir: &tempfile::TempDir) -> Settings {
    let mut s = Settings::for_url(format!("sqlite://{}/c.sqlite?mode=rwc", dir.path().display()));
    s.database.sqlite_synchronous = botdb::Synchronous::Normal;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_cold_reads_make_one_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(settings_for(&dir)).await.unwrap();
    db.create("PersonInfo", &person("hot")).await.unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let m = model("PersonInfo").unwrap();
    let sel = Select::parse(m, &json!({"person_id": "hot"}), &[], None).unwrap();
    let reader = botdb::testing::engine(&db).reader().clone();
    let q = queries.clone();
    let load = move |s: Select| -> BoxFuture<'static, botdb::Result<Vec<Row>>> {
        let (reader, q) = (reader.clone(), q.clone());
        Box::pin(async move {
            q.fetch_add(1, Ordering::SeqCst);
            // Hold the load open long enough for every reader to pile onto it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            botdb::testing::exec::select(&reader, &s).await
        })
    };
    let load = Arc::new(load);
    let cache = botdb::testing::cache(&db).clone();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (cache, sel, load) = (cache.clone(), sel.clone(), load.clone());
            tokio::spawn(async move { cache.read(&sel, &*load).await.unwrap().len() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    assert_eq!(queries.load(Ordering::SeqCst), 1, "1,000 concurrent cold reads, one database query");
    let s = db.cache_stats();
    println!(
        "single-flight: {} requests, {} loads, {} coalesced, {} hits",
        s.requests,
        s.database_loads,
        s.coalesced_loads,
        s.l1_hits + s.l2_hits
    );
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_began_before_a_write_never_installs_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(settings_for(&dir)).await.unwrap();
    db.create("PersonInfo", &person("race")).await.unwrap();
    let m = model("PersonInfo").unwrap();
    let sel = Select::parse(m, &json!({"person_id": "race"}), &[], None).unwrap();
    let cache: Cache = botdb::testing::cache(&db).clone();
    // A slow load: reads the old row, then waits until the write has committed before returning it.
    let (read_done_tx, read_done_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let gates = Arc::new(std::sync::Mutex::new(Some((read_done_tx, release_rx))));
    let reader = botdb::testing::engine(&db).reader().clone();
    let slow = move |s: Select| -> BoxFuture<'static, botdb::Result<Vec<Row>>> {
        let (reader, gates) = (reader.clone(), gates.clone());
        Box::pin(async move {
            let rows = botdb::testing::exec::select(&reader, &s).await?;
            let gate = gates.lock().unwrap().take();
            if let Some((done, release)) = gate {
                done.send(()).unwrap();
                release.await.unwrap();
            }
            Ok(rows)
        })
    };
    let (c2, s2) = (cache.clone(), sel.clone());
    let pending = tokio::spawn(async move { c2.read(&s2, &slow).await.unwrap() });
    read_done_rx.await.unwrap();
    db.update("PersonInfo", &json!({"person_id": "race"}), &json!({"nickname": "after"})).await.unwrap();
    release_tx.send(()).unwrap();
    let stale = pending.await.unwrap();
    assert_eq!(stale[0]["nickname"], Value::Null, "the slow load saw the old row");
    let fresh = db.find_one("PersonInfo", &json!({"person_id": "race"}), &[]).await.unwrap().unwrap();
    assert_eq!(fresh["nickname"], json!("after"), "its older result was not installed where reads look");
    db.shutdown().await;
}

#[tokio::test]
async fn ttl_expiry_and_the_memory_bound_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings_for(&dir);
    s.cache.l1_ttl_ms = 100;
    s.cache.l2_ttl_ms = 100;
    s.cache.l2_max_bytes = 64 * 1024;
    let db = Db::open(s).await.unwrap();
    db.create("PersonInfo", &person("ttl")).await.unwrap();
    let key = json!({"person_id": "ttl"});
    let read = || db.find_one("PersonInfo", &key, &[]);
    read().await.unwrap();
    let loads = db.cache_stats().database_loads;
    read().await.unwrap();
    assert_eq!(db.cache_stats().database_loads, loads, "a hit within the TTL");
    // Time passing is what is under test here.
    tokio::time::sleep(Duration::from_millis(250)).await;
    read().await.unwrap();
    assert_eq!(db.cache_stats().database_loads, loads + 1, "expired entries are reloaded");
    for i in 0..2000 {
        db.find("PersonInfo", &json!({"person_id": format!("absent-{i}")}), &[], None).await.unwrap();
    }
    botdb::testing::cache(&db).run_pending_tasks().await;
    let st = db.cache_stats();
    assert!(st.l2_bytes <= 64 * 1024, "{st:?}");
    assert!(st.evicted_size > 0 || st.evicted_expired > 0, "{st:?}");
    db.shutdown().await;
}

/// A result above `cache.max_entry_bytes` (a scan's page) is answered in full and not kept: the next read
/// of it loads again, and the hot entry it would have evicted stays cached.
#[tokio::test]
async fn a_result_too_big_to_keep_is_answered_and_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings_for(&dir);
    s.cache.l1_max_bytes = 256 * 1024;
    s.cache.l2_max_bytes = 256 * 1024;
    s.cache.max_entry_bytes = 64 * 1024;
    s.preload.enabled = false;
    let db = Db::open(s).await.unwrap();
    let people: Vec<Value> = (0..400).map(|i| person(&format!("p{i:03}"))).collect();
    for p in &people {
        db.create("PersonInfo", p).await.unwrap();
    }
    let hot = json!({"person_id": "p007"});
    db.find_one("PersonInfo", &hot, &[]).await.unwrap().unwrap();
    let st = db.cache_stats();
    // Pages of 200 rows (well over 64 KiB each), then a small page that fits.
    let page = db.find_after("PersonInfo", &json!({}), 0, 200).await.unwrap();
    assert_eq!(page.len(), 200);
    let last = page[199]["id"].as_i64().unwrap();
    assert_eq!(db.find_after("PersonInfo", &json!({}), last, 200).await.unwrap().len(), 200);
    let small = db.find_after("PersonInfo", &json!({}), 0, 5).await.unwrap();
    assert_eq!(small.len(), 5);
    let after_scan = db.cache_stats();
    assert_eq!(after_scan.too_big, st.too_big + 2, "{after_scan:?}");
    assert_eq!(after_scan.database_loads, st.database_loads + 3, "{after_scan:?}");
    // The big page is loaded again; the small one and the hot key are hits.
    assert_eq!(db.find_after("PersonInfo", &json!({}), 0, 200).await.unwrap(), page);
    assert_eq!(db.find_after("PersonInfo", &json!({}), 0, 5).await.unwrap(), small);
    db.find_one("PersonInfo", &hot, &[]).await.unwrap().unwrap();
    let end = db.cache_stats();
    assert_eq!(end.database_loads, after_scan.database_loads + 1, "only the big page loaded again: {end:?}");
    assert_eq!(end.too_big, after_scan.too_big + 1, "{end:?}");
    botdb::testing::cache(&db).run_pending_tasks().await;
    assert!(db.cache_stats().l2_bytes <= 256 * 1024);
    db.shutdown().await;
}

#[tokio::test]
async fn per_model_policy_turns_caching_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings_for(&dir);
    s.cache.models.insert("PersonInfo".into(), botdb::config::ModelCachePolicy { enabled: Some(false), ttl_ms: None });
    let db = Db::open(s).await.unwrap();
    db.find_one("PersonInfo", &json!({"person_id": "x"}), &[]).await.unwrap();
    assert_eq!(db.cache_stats().requests, 0);
    db.shutdown().await;
    let mut s = settings_for(&dir);
    s.cache.models.insert("Nope".into(), Default::default());
    assert!(matches!(Db::open(s).await, Err(botdb::Error::Config(_))));
}

/// A Redis URL for the shared-tier tests: `BOTDB_TEST_REDIS_URL` (required under CI=true).
fn redis_url() -> Option<String> {
    match std::env::var("BOTDB_TEST_REDIS_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "BOTDB_TEST_REDIS_URL must be set under CI=true");
            eprintln!("skipping: BOTDB_TEST_REDIS_URL is not set");
            None
        }
    }
}

fn with_redis(dir: &tempfile::TempDir, url: &str, prefix: &str) -> Settings {
    let mut s = settings_for(dir);
    s.cache.redis.url = Some(botdb::DatabaseUrl::new(url));
    s.cache.redis.key_prefix = prefix.into();
    s.cache.redis.breaker_cooldown_ms = 200;
    s
}

async fn wait_until(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_sharing_redis_see_each_others_writes() {
    let Some(url) = redis_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("botdb-test-{}", fastrand::u64(..));
    let a = Db::open(with_redis(&dir, &url, &prefix)).await.unwrap();
    let b = Db::open(with_redis(&dir, &url, &prefix)).await.unwrap();
    // Both subscribed and synchronised.
    assert!(
        wait_until(Duration::from_secs(5), async || a.redis_state() == PartState::Up
            && b.redis_state() == PartState::Up)
        .await
        .is_some()
    );
    a.create("PersonInfo", &person("shared")).await.unwrap();
    let nick = async |db: &Db| {
        db.find_one("PersonInfo", &json!({"person_id": "shared"}), &[]).await.unwrap().unwrap()["nickname"].clone()
    };
    assert_eq!(nick(&a).await, Value::Null);
    assert_eq!(nick(&b).await, Value::Null);
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let v = json!(format!("n{round}"));
        writer.update("PersonInfo", &json!({"person_id": "shared"}), &json!({"nickname": v})).await.unwrap();
        let seen = wait_until(Duration::from_secs(2), async || nick(reader).await == v).await;
        let seen = seen.unwrap_or_else(|| panic!("round {round}: the other handle never saw the write"));
        worst = worst.max(seen);
    }
    println!(
        "cross-process invalidation: a write through one handle was seen by the other within {worst:?} (worst of 20)"
    );
    // What one handle loaded, the other reads from Redis instead of its database. (Read by a column the
    // write does not carry, so `a` loads it rather than answering from its write-through entry.)
    a.create("PersonInfo", &person("warm")).await.unwrap();
    let by_nick = json!({"nickname": "warm-nick"});
    a.update("PersonInfo", &json!({"person_id": "warm"}), &by_nick).await.unwrap();
    a.find_one("PersonInfo", &by_nick, &[]).await.unwrap().unwrap();
    let before = b.cache_stats().redis_hits;
    let hit = wait_until(Duration::from_secs(2), async || {
        b.find_one("PersonInfo", &by_nick, &[]).await.unwrap().is_some() && b.cache_stats().redis_hits > before
    })
    .await;
    assert!(hit.is_some(), "{:?}", b.cache_stats());
    // A flush through one handle reaches the other.
    assert!(a.flush_cache().await.is_some_and(|n| n >= 1), "b's bus receives the flush");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_never_fails_a_read_and_recovers() {
    if redis_url().is_none() {
        return;
    }
    // A private Redis, so freezing it disturbs nobody else.
    let port = 20_000 + fastrand::u16(..20_000);
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is on PATH where BOTDB_TEST_REDIS_URL is set");
    struct Cont(u32);
    impl Drop for Cont {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
        }
    }
    let url = format!("redis://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(with_redis(&dir, &url, "frozen")).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), async || db.redis_state() == PartState::Up).await.is_some());
    for i in 0..20 {
        db.create("PersonInfo", &person(&format!("f{i}"))).await.unwrap();
        db.find_one("PersonInfo", &json!({"person_id": format!("f{i}")}), &[]).await.unwrap().unwrap();
    }
    let guard = Cont(server.id());
    assert!(std::process::Command::new("kill").args(["-STOP", &server.id().to_string()]).status().unwrap().success());
    let start = Instant::now();
    for i in 0..20 {
        // Cold keys, cached keys and writes all succeed while Redis is frozen.
        let p = db.find_one("PersonInfo", &json!({"person_id": format!("f{i}")}), &[]).await.unwrap().unwrap();
        assert_eq!(p["person_id"], json!(format!("f{i}")));
        db.update("PersonInfo", &json!({"person_id": format!("f{i}")}), &json!({"nickname": "frozen"})).await.unwrap();
        let p = db.find_one("PersonInfo", &json!({"person_id": format!("f{i}")}), &[]).await.unwrap().unwrap();
        assert_eq!(p["nickname"], json!("frozen"), "read-your-writes holds without Redis");
        assert!(db.find_one("PersonInfo", &json!({"person_id": format!("cold-{i}")}), &[]).await.unwrap().is_none());
    }
    let frozen_for = start.elapsed();
    assert_eq!(db.redis_state(), PartState::Degraded);
    assert!(db.cache_stats().redis_errors > 0);
    println!("80 operations with Redis frozen took {frozen_for:?}");
    drop(guard);
    let back = wait_until(Duration::from_secs(10), async || {
        db.find_one("PersonInfo", &json!({"person_id": "f0"}), &[]).await.unwrap();
        db.redis_state() == PartState::Up
    })
    .await;
    println!("Redis tier back up {back:?} after SIGCONT");
    assert!(back.is_some(), "the tier recovers when Redis returns");
    db.shutdown().await;
    server.kill().ok();
    server.wait().ok();
}

/// A write acknowledged while Redis was frozen (its counters could not move there) is never read stale
/// afterwards: not from another handle's in-process cache, not through Redis once it returns, whether the
/// writer was a short-lived process (gone before Redis came back) or a long-lived handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_missed_redis_is_never_read_stale_elsewhere() {
    if redis_url().is_none() {
        return;
    }
    let port = 20_000 + fastrand::u16(..20_000);
    let server = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is on PATH where BOTDB_TEST_REDIS_URL is set");
    /// Stops the private Redis however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-CONT", &self.0.id().to_string()]).status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    struct Cont(u32);
    impl Drop for Cont {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
        }
    }
    let server = Server(server);
    let url = format!("redis://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let reader = Db::open(with_redis(&dir, &url, "fence")).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), async || reader.redis_state() == PartState::Up).await.is_some());
    reader.create("PersonInfo", &person("p1")).await.unwrap();
    let nick = async |db: &Db| {
        db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap()["nickname"].clone()
    };
    let before = reader.cache_stats().l1_hits + reader.cache_stats().l2_hits;
    assert_eq!(nick(&reader).await, Value::Null);
    assert_eq!(nick(&reader).await, Value::Null);
    assert!(reader.cache_stats().l1_hits + reader.cache_stats().l2_hits > before, "the row is cached");

    let guard = Cont(server.0.id());
    assert!(std::process::Command::new("kill").args(["-STOP", &server.0.id().to_string()]).status().unwrap().success());
    // A short-lived process writes while Redis is frozen, and ends.
    let db_url = reader.settings().database.url.expose().to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", &db_url, "save", "PersonInfo", "--data", r#"{"nickname":"NEW"}"#])
        .args(["--key-field", "person_id", "--key-value", r#""p1""#])
        .env_remove("BOTDB_CONFIG_DIR")
        .env("BOTDB__CACHE__REDIS__URL", &url)
        .env("BOTDB__CACHE__REDIS__KEY_PREFIX", "fence")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(nick(&reader).await, json!("NEW"), "the other process's write is seen at once");
    // A long-lived writer, Redis still frozen.
    let writer = Db::open(with_redis(&dir, &url, "fence")).await.unwrap();
    writer.update("PersonInfo", &json!({"person_id": "p1"}), &json!({"nickname": "NEWER"})).await.unwrap();
    assert_eq!(nick(&reader).await, json!("NEWER"));
    assert_eq!(nick(&writer).await, json!("NEWER"));

    drop(guard);
    // Redis is back: the debt is made good, cached reads are served again, and nothing stale comes back.
    let cached_again = wait_until(Duration::from_secs(10), async || {
        let hits = reader.cache_stats().l1_hits + reader.cache_stats().l2_hits + reader.cache_stats().redis_hits;
        assert_eq!(nick(&reader).await, json!("NEWER"));
        assert_eq!(nick(&writer).await, json!("NEWER"));
        reader.cache_stats().l1_hits + reader.cache_stats().l2_hits + reader.cache_stats().redis_hits > hits
    })
    .await;
    assert!(cached_again.is_some(), "cached reads come back once the writes are made good");
    // A process started now reads the shared counters from Redis, moved past every entry before the writes.
    let fresh = Db::open(with_redis(&dir, &url, "fence")).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), async || fresh.redis_state() == PartState::Up).await.is_some());
    assert_eq!(nick(&fresh).await, json!("NEWER"));
    for db in [reader, writer, fresh] {
        db.shutdown().await;
    }
    drop(server);
}

/// Loader type check: the public `Loader` accepts a plain closure.
#[allow(dead_code)]
fn loader_type(f: &(dyn Fn(Select) -> BoxFuture<'static, botdb::Result<Vec<Row>>> + Send + Sync)) -> Loader<'_> {
    f
}

#[allow(dead_code)]
fn touched_type() -> Touched {
    Touched { model: model("Messages").unwrap(), reach: Reach::Everything }
}

/// The speakers of a warmed chat are cached with one query per model (not one per person): every person
/// and relationship read after the warm-up is a hit, and a speaker without a relationship is cached empty.
#[tokio::test]
async fn a_warm_up_caches_a_chats_speakers_in_a_few_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(settings_for(&dir)).await.unwrap();
    for i in 0..30 {
        let u = format!("u{i}");
        db.create("PersonInfo", &json!({"person_id": format!("p-{u}"), "platform": "qq", "user_id": u})).await.unwrap();
        if i % 3 != 0 {
            db.create("UserRelationships", &json!({"user_id": u, "relationship_text": format!("r{i}")})).await.unwrap();
        }
        let mut m = msg(&format!("m{i}"), "busy", f64::from(i));
        m["user_id"] = json!(u);
        db.create("Messages", &m).await.unwrap();
    }
    db.shutdown().await;
    let mut s = settings_for(&dir);
    s.preload.chats = 1;
    s.preload.on_activity = false;
    let db = Db::open(s).await.unwrap();
    let warm = db.cache_stats();
    assert_eq!(warm.database_loads, 4, "window, stream, people, relationships: {warm:?}");
    for i in 0..30 {
        let p = db.find_one("PersonInfo", &json!({"person_id": format!("p-u{i}")}), &[]).await.unwrap().unwrap();
        assert_eq!(p["user_id"], json!(format!("u{i}")));
        let r = db.find_one("UserRelationships", &json!({"user_id": format!("u{i}")}), &[]).await.unwrap();
        assert_eq!(r.map(|r| r["relationship_text"].clone()), (i % 3 != 0).then(|| json!(format!("r{i}"))), "u{i}");
    }
    assert_eq!(db.cache_stats().database_loads, 4, "every speaker read was a hit: {:?}", db.cache_stats());
    // A write after the warm-up is seen (the warm entries are reachable only until it commits).
    db.update("UserRelationships", &json!({"user_id": "u1"}), &json!({"relationship_text": "new"})).await.unwrap();
    let r = db.find_one("UserRelationships", &json!({"user_id": "u1"}), &[]).await.unwrap().unwrap();
    assert_eq!(r["relationship_text"], json!("new"));
    db.shutdown().await;
}

#[tokio::test]
async fn preload_warms_the_most_active_chats() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(settings_for(&dir)).await.unwrap();
    for c in 0..5 {
        for i in 0..10 {
            db.create("Messages", &msg(&format!("{c}-{i}"), &format!("chat-{c}"), (c * 100 + i) as f64)).await.unwrap();
        }
    }
    db.shutdown().await;
    let mut s = settings_for(&dir);
    s.preload.chats = 2;
    let db = Db::open(s).await.unwrap();
    let warm = db.cache_stats();
    assert_eq!(warm.database_loads, 4, "2 chats × (window + stream): {warm:?}");
    // The most recently active chat's history is answered without the database.
    let rows =
        db.find("Messages", &json!({"chat_id": "chat-4", "time": {"$lt": 1e9}}), &["-time"], Some(8)).await.unwrap();
    assert_eq!(rows[0]["message_id"], json!("4-9"));
    assert_eq!(db.cache_stats().database_loads, 4);
    // A cold chat is loaded.
    db.find("Messages", &json!({"chat_id": "chat-0", "time": {"$lt": 1e9}}), &["-time"], Some(8)).await.unwrap();
    assert_eq!(db.cache_stats().database_loads, 5);
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_chat_is_warmed_with_its_people_and_refreshed_ahead_of_expiry() {
    let dir = tempfile::tempdir().unwrap();
    // No refresher while the on-insert warm-up is measured (its loads would count too).
    let db = Db::open(settings_for(&dir)).await.unwrap();
    db.create("PersonInfo", &json!({"person_id": "p-u1", "platform": "qq", "user_id": "u1"})).await.unwrap();
    db.create("UserRelationships", &json!({"user_id": "u1"})).await.unwrap();
    let before = db.cache_stats().database_loads;
    // The first message in a chat warms it in the background: window and stream (2 loads), and the
    // speaker's person and relationship (already cached: written through when created), without anyone
    // reading.
    let mut m = msg("first", "new-chat", 1.0);
    m["user_id"] = json!("u1");
    db.create("Messages", &m).await.unwrap();
    let warmed = wait_until(Duration::from_secs(5), async || db.cache_stats().database_loads >= before + 2).await;
    assert!(warmed.is_some(), "{:?}", db.cache_stats());
    let loads = db.cache_stats().database_loads;
    db.find_one("PersonInfo", &json!({"person_id": "p-u1"}), &[]).await.unwrap().unwrap();
    db.find_one("UserRelationships", &json!({"user_id": "u1"}), &[]).await.unwrap().unwrap();
    assert_eq!(db.cache_stats().database_loads, loads, "the speaker's person and relationship were warm");
    db.shutdown().await;
    // Refresh ahead of expiry: the active chat's entries are reloaded with nobody reading.
    let mut s = settings_for(&dir);
    s.preload.refresh_ms = 200;
    let db = Db::open(s).await.unwrap();
    let loads = db.cache_stats().database_loads;
    let refreshed = wait_until(Duration::from_secs(5), async || db.cache_stats().database_loads > loads + 2).await;
    assert!(refreshed.is_some(), "{:?}", db.cache_stats());
    db.shutdown().await;
}

/// A process whose counters are ahead of Redis's (Redis lost them, or a write could not reach it) still moves
/// them with its next write: a read after that write never answers from an entry cached before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_moves_the_counters_even_when_redis_is_behind() {
    let Some(url) = redis_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("botdb-test-{}", fastrand::u64(..));
    let db = Db::open(with_redis(&dir, &url, &prefix)).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), async || db.redis_state() == PartState::Up).await.is_some());
    db.create("PersonInfo", &person("behind")).await.unwrap();
    let nicks = async || {
        let rows = db.find("PersonInfo", &json!({"platform": "qq"}), &["id"], None).await.unwrap();
        rows.iter().map(|r| r["nickname"].clone()).collect::<Vec<_>>()
    };
    db.update("PersonInfo", &json!({"person_id": "behind"}), &json!({"nickname": "one"})).await.unwrap();
    assert_eq!(nicks().await, [json!("one")]);
    assert_eq!(nicks().await, [json!("one")], "cached");
    // Redis forgets the model's counters (a restart without persistence): it is now behind this process.
    let key = format!("{prefix}:f3:gen:person_info");
    let out = std::process::Command::new("redis-cli").args(["-u", &url, "DEL", &key]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    db.update("PersonInfo", &json!({"person_id": "behind"}), &json!({"nickname": "two"})).await.unwrap();
    assert_eq!(nicks().await, [json!("two")], "the read after the write saw it");
    db.shutdown().await;
}

/// Retention configured: a running handle prunes rows past the age in the background, and does not serve
/// them from its cache afterwards; bad retention settings are refused at open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_rows_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings_for(&dir);
    s.retention.models.insert("Messages".into(), 86_400);
    s.retention.every_s = 1;
    let db = Db::open(s.clone()).await.unwrap();
    let now = botdb::testing::time::now_epoch();
    db.create("Messages", &msg("old", "c", now - 2.0 * 86_400.0)).await.unwrap();
    db.create("Messages", &msg("new", "c", now)).await.unwrap();
    // Cached before the prune.
    assert!(db.find_one("Messages", &json!({"message_id": "old"}), &[]).await.unwrap().is_some());
    let pruned =
        wait_until(Duration::from_secs(20), async || db.count("Messages", &json!({})).await.unwrap() == 1).await;
    assert!(pruned.is_some(), "the old message is pruned within a few intervals");
    assert!(db.find_one("Messages", &json!({"message_id": "old"}), &[]).await.unwrap().is_none());
    assert!(db.find_one("Messages", &json!({"message_id": "new"}), &[]).await.unwrap().is_some());
    db.shutdown().await;

    for (model, says) in [("Nope", "retention.models"), ("ChatStreams", "no time column")] {
        let mut bad = s.clone();
        bad.retention.models = [(model.to_owned(), 1)].into_iter().collect();
        let err = Db::open(bad).await.unwrap_err();
        assert!(matches!(&err, botdb::Error::Config(m) if m.contains(says)), "{err}");
    }
}

/// A change made outside botdb is invisible while the cached reads live; `forget_cached` (what
/// `botdb-admin cache flush --model M [--partition P]` calls) drops exactly the reads it names.
async fn forgetting_a_model_or_a_chat_shows_outside_changes(t: &TestDb) {
    let db = &t.db;
    db.create("PersonInfo", &json!({"person_id": "p1", "platform": "qq", "user_id": "1", "nickname": "old"}))
        .await
        .unwrap();
    for (i, chat) in ["c1", "c2"].iter().enumerate() {
        db.create("Messages", &msg(&format!("m{i}"), chat, 10.0)).await.unwrap();
    }
    let person = || async move {
        let row = db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap();
        row["nickname"].clone()
    };
    let text = |chat: &'static str| async move {
        let rows = db.find("Messages", &json!({"chat_id": chat}), &["-time"], Some(8)).await.unwrap();
        rows[0]["processed_plain_text"].clone()
    };
    assert_eq!(person().await, "old");
    let before = (text("c1").await, text("c2").await);
    // Behind botdb's back.
    use botdb::sea_orm::ConnectionTrait;
    let w = botdb::testing::engine(db).writer();
    w.execute_unprepared("UPDATE person_info SET nickname = 'outside'").await.unwrap();
    w.execute_unprepared("UPDATE messages SET processed_plain_text = 'outside'").await.unwrap();
    assert_eq!(person().await, "old", "cached");
    // One chat of one model: the other chat and the other model keep their cached reads.
    db.forget_cached(&["Messages".into()], Some("c1")).await.unwrap();
    assert_eq!((text("c1").await, text("c2").await), (json!("outside"), before.1.clone()));
    assert_eq!(person().await, "old");
    db.forget_cached(&["PersonInfo".into(), "Messages".into()], None).await.unwrap();
    assert_eq!(person().await, "outside");
    assert_eq!(text("c2").await, "outside");
    let e = db.forget_cached(&["OnlineTime".into()], Some("c1")).await.unwrap_err();
    assert!(matches!(e, botdb::Error::InvalidRequest(_)), "{e}");
    let e = db.forget_cached(&["Nope".into()], None).await.unwrap_err();
    assert!(matches!(e, botdb::Error::UnknownModel { .. }), "{e}");
}

/// Another connection (another process, the bot's own SQLAlchemy code) writes rows a handle has cached:
/// on SQLite the handle notices the commit (`PRAGMA data_version`, every `cache.external_check_ms`) and
/// serves the new value from then on, never the old one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_commits_on_sqlite_reach_the_cache() {
    use botdb::sea_orm::{ConnectionTrait, Database};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/shared.sqlite?mode=rwc", dir.path().display());
    let db = Db::open(Settings::for_url(&url)).await.unwrap();
    assert_eq!(db.settings().cache.external_check_ms, 200);
    db.create("PersonInfo", &json!({"person_id": "p1", "platform": "qq", "user_id": "1", "nickname": "v0"}))
        .await
        .unwrap();
    let other = Database::connect(&url).await.unwrap();
    let nickname = || async {
        db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap()["nickname"].clone()
    };
    let mut worst = Duration::ZERO;
    for i in 1..=30 {
        assert_eq!(nickname().await, json!(format!("v{}", i - 1)), "cached before the foreign write");
        other.execute_unprepared(&format!("UPDATE person_info SET nickname = 'v{i}'")).await.unwrap();
        let written = Instant::now();
        // Within the bound (generously: a loaded machine delays the check), then never the old value again.
        loop {
            let seen = nickname().await;
            if seen == json!(format!("v{i}")) {
                break;
            }
            assert_eq!(seen, json!(format!("v{}", i - 1)));
            assert!(written.elapsed() < Duration::from_secs(10), "write {i} still invisible after 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(written.elapsed());
        assert_eq!(nickname().await, json!(format!("v{i}")));
    }
    assert!(worst < Duration::from_secs(10));
    // botdb's own writes do not look foreign: a cached read stays cached across them (each followed by
    // more than one check period, so the watcher looks after each).
    let before = db.cache_stats().database_loads;
    for _ in 0..3 {
        db.update("PersonInfo", &json!({"person_id": "p2"}), &json!({"nickname": "x"})).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        nickname().await;
    }
    let after = db.cache_stats().database_loads;
    assert!(after - before <= 1, "own writes dropped the cache: {before} → {after} loads");
    db.shutdown().await;
}
