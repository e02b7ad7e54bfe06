//! The read contract: a read sees every write acknowledged before it began and waits for nobody else's
//! pending writes; a session also sees its own pending writes, applied to the committed answer without
//! waiting where the read's shape allows. With the SQLite writer held back by another connection, a history
//! checker over concurrent sessions on every backend, and a differential check of the applied views.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botdb::sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use botdb::{Db, Settings};
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

fn msg(id: &str, chat: &str, time: f64, user: &str) -> Value {
    json!({"message_id": id, "time": time, "chat_id": chat, "user_id": user, "chat_info_stream_id": chat,
        "chat_info_platform": "qq", "chat_info_user_platform": "qq", "chat_info_user_id": "u",
        "chat_info_user_nickname": "n", "chat_info_create_time": 0.0, "chat_info_last_active_time": 0.0})
}

fn person(id: &str, nickname: &str) -> Value {
    json!({"person_id": id, "platform": "qq", "user_id": id, "nickname": nickname, "know_times": 1.0})
}

/// A SQLite database whose writer waits (rather than fails) while another connection holds the lock.
async fn held_back() -> (tempfile::TempDir, Db, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.sqlite?mode=rwc", dir.path().display());
    let mut s = Settings::for_url(url.clone());
    s.database.sqlite_synchronous = botdb::Synchronous::Normal;
    s.database.busy_timeout_ms = 60_000;
    (dir, Db::open(s).await.unwrap(), url)
}

/// Another connection holding SQLite's write lock until dropped with [`release`].
async fn hold_lock(url: &str) -> DatabaseConnection {
    let mut opt = ConnectOptions::new(url);
    opt.max_connections(1).min_connections(1);
    let holder = Database::connect(opt).await.unwrap();
    holder.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    holder
}

async fn release(holder: DatabaseConnection) {
    holder.execute_unprepared("COMMIT").await.unwrap();
    holder.close().await.unwrap();
}

/// Bounds a read that must not wait for the held-back writer: it would otherwise block for a minute.
async fn at_once<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("the read waited for the held-back writer")
}

fn ids(rows: &botdb::Rows) -> Vec<String> {
    rows.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sees_its_pending_writes_without_waiting_and_others_do_not() {
    let (_dir, db, url) = held_back().await;
    for i in 0..5 {
        db.create("Messages", &msg(&format!("old{i}"), "c", 100.0 + f64::from(i), "u1")).await.unwrap();
    }
    db.create("PersonInfo", &person("p1", "before")).await.unwrap();
    // Warm the committed answers, so both the cached and the loaded paths are exercised below.
    db.find("Messages", &json!({"chat_id": "c", "time": {"$lt": 1e9}}), &["-time"], Some(8)).await.unwrap();
    let holder = hold_lock(&url).await;
    let s = db.session();
    let insert = s.submit_create("Messages", &msg("new", "c", 200.0, "u1")).await.unwrap();
    let update =
        s.submit_update("Messages", &json!({"message_id": "old4"}), &json!({"interest_value": 0.75})).await.unwrap();
    let delete = s.submit_delete("Messages", &json!({"message_id": "old0"})).await.unwrap();
    let inc = s.submit_increment("PersonInfo", &json!({"person_id": "p1"}), "know_times", &json!(2.5)).await.unwrap();
    let rename =
        s.submit_update("PersonInfo", &json!({"person_id": "p1"}), &json!({"nickname": "after"})).await.unwrap();
    let born = s.submit_create("PersonInfo", &person("p2", "new")).await.unwrap();

    // Recent history (a window): the insert on top, the update applied, the delete gone.
    let window =
        at_once(s.find("Messages", &json!({"chat_id": "c", "time": {"$lt": 1e9}}), &["-time"], Some(8))).await.unwrap();
    assert_eq!(ids(&window), ["new", "old4", "old3", "old2", "old1"]);
    assert_eq!(window[0]["id"], Value::Null, "a pending insert has no id yet");
    assert_eq!(window[1]["interest_value"], json!(0.75));
    // Point reads by a unique key.
    let p1 = at_once(s.find_one("PersonInfo", &json!({"person_id": "p1"}), &[])).await.unwrap().unwrap();
    assert_eq!((p1["know_times"].clone(), p1["nickname"].clone()), (json!(3.5), json!("after")));
    let p2 = at_once(s.find_one("PersonInfo", &json!({"person_id": "p2"}), &[])).await.unwrap().unwrap();
    assert_eq!(p2["nickname"], json!("new"));
    // A filtered read (not a window): by user, oldest first.
    let by_user = at_once(s.find("Messages", &json!({"user_id": "u1"}), &["time"], None)).await.unwrap();
    assert_eq!(ids(&by_user), ["old1", "old2", "old3", "old4", "new"]);

    // Another handle neither waits for them nor sees them.
    let other = db.session();
    let plain = at_once(other.find("Messages", &json!({"user_id": "u1"}), &["time"], None)).await.unwrap();
    assert_eq!(ids(&plain), ["old0", "old1", "old2", "old3", "old4"]);
    let p1 = at_once(db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[])).await.unwrap().unwrap();
    assert_eq!(p1["nickname"], json!("before"));
    assert!(at_once(db.find_one("PersonInfo", &json!({"person_id": "p2"}), &[])).await.unwrap().is_none());

    release(holder).await;
    for t in [insert, update, delete, inc, rename, born] {
        t.await.unwrap();
    }
    // Acknowledged: everyone sees them now.
    let plain = db.find("Messages", &json!({"user_id": "u1"}), &["time"], None).await.unwrap();
    assert_eq!(ids(&plain), ["old1", "old2", "old3", "old4", "new"]);
    assert!(plain[4]["id"].is_i64());
    let p1 = db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap();
    assert_eq!((p1["know_times"].clone(), p1["nickname"].clone()), (json!(3.5), json!("after")));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pending_write_leaves_the_sessions_view() {
    let (_dir, db, url) = held_back().await;
    db.create("PersonInfo", &person("p1", "first")).await.unwrap();
    let holder = hold_lock(&url).await;
    let s = db.session();
    // person_id is unique: this insert will fail when it runs.
    let dup = s.submit_create("PersonInfo", &person("p1", "duplicate")).await.unwrap();
    let pending = at_once(s.find("PersonInfo", &json!({"platform": "qq"}), &["id"], None)).await.unwrap();
    assert_eq!(pending.len(), 2, "before it runs, the session sees its pending insert");
    release(holder).await;
    assert!(matches!(dup.await, Err(botdb::Error::Constraint { .. })));
    let after = s.find("PersonInfo", &json!({"platform": "qq"}), &["id"], None).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["nickname"], json!("first"));
    db.shutdown().await;
}

/// Random pending writes through one session while the writer is held back: every view it answers equals
/// what the database answers once they are flushed (rows compared without ids, which pending inserts lack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_with_pending_writes_equal_the_database_after_flush() {
    for seed in 0..6u64 {
        let (_dir, db, url) = held_back().await;
        let mut rng = fastrand::Rng::with_seed(seed);
        for i in 0..20 {
            let chat = format!("c{}", i % 2);
            db.create("Messages", &msg(&format!("m{i}"), &chat, f64::from(i), &format!("u{}", i % 3))).await.unwrap();
        }
        let holder = hold_lock(&url).await;
        let s = db.session();
        let mut tickets = vec![];
        for k in 0..12 {
            let target = format!("m{}", rng.u32(0..20));
            let t = match rng.u8(0..4) {
                0 => {
                    let chat = format!("c{}", rng.u8(0..2));
                    let m = msg(&format!("n{k}"), &chat, 20.0 + f64::from(k), &format!("u{}", rng.u8(0..3)));
                    s.submit_create("Messages", &m).await
                }
                1 => s.submit_update("Messages", &json!({"message_id": target}), &json!({"interest_value": k})).await,
                2 => s.submit_increment("Messages", &json!({"message_id": target}), "memorized_times", &json!(1)).await,
                _ => s.submit_delete("Messages", &json!({"message_id": target})).await,
            };
            tickets.push(t.unwrap());
        }
        let reads = [
            (json!({"chat_id": "c0", "time": {"$lt": 100.0}}), vec!["-time"], Some(8)),
            (json!({"chat_id": "c1", "time": {"$lt": 100.0}}), vec!["-time"], Some(30)),
            (json!({"user_id": "u1"}), vec!["time"], None),
            (json!({"user_id": {"$in": ["u0", "u2"]}, "time": {"$gte": 5.0}}), vec!["-time"], None),
        ];
        let mut views = vec![];
        for (f, o, l) in &reads {
            views.push(at_once(s.find("Messages", f, o, *l)).await.unwrap());
        }
        release(holder).await;
        for t in tickets {
            t.await.unwrap();
        }
        for ((f, o, l), view) in reads.iter().zip(views) {
            let truth = db.find("Messages", f, o, *l).await.unwrap();
            let strip = |rows: &botdb::Rows| {
                rows.iter()
                    .map(|r| {
                        let mut r = botdb::Row::clone(r);
                        r.remove("id");
                        r
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&view), strip(&truth), "seed {seed}, read {f}");
        }
        db.shutdown().await;
    }
}

/// What the history checker knows: acknowledged writes with the moment they were acknowledged.
#[derive(Default)]
struct History {
    clock: AtomicU64,
    /// message_id → (chat, time, acknowledged at).
    acked: Mutex<HashMap<String, (String, f64, u64)>>,
}

/// Concurrent sessions insert messages into a few hot chats (some awaited at once, some later) and read
/// the chats' recent history: every read holds every message acknowledged before it began that belongs in
/// its answer, and nothing that never committed except the reader's own pending writes.
async fn history_checker(t: &TestDb) {
    let db = &t.db;
    let h = Arc::new(History::default());
    let next_time = Arc::new(AtomicU64::new(1));
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let workers = (0..6).map(|w| {
        let (db, h, next_time, seen) = (db.clone(), h.clone(), next_time.clone(), seen.clone());
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(w);
            let mut mine_pending: Vec<(String, botdb::Ticket)> = vec![];
            for k in 0..40 {
                let s = db.session();
                let chat = format!("hot{}", rng.u8(0..2));
                if rng.bool() {
                    let id = format!("w{w}-{k}");
                    let time = next_time.fetch_add(1, Ordering::SeqCst) as f64;
                    let ticket = s.submit_create("Messages", &msg(&id, &chat, time, "u")).await.unwrap();
                    // The writer's own session sees it at once.
                    let filter = json!({"chat_id": chat, "time": {"$lte": time}});
                    let rows = s.find("Messages", &filter, &["-time"], Some(8)).await.unwrap();
                    assert!(ids(&rows).contains(&id), "a session missed its own pending write");
                    if rng.bool() {
                        ticket.await.unwrap();
                        let at = h.clock.fetch_add(1, Ordering::SeqCst);
                        h.acked.lock().unwrap().insert(id, (chat, time, at));
                    } else {
                        mine_pending.push((id, ticket));
                    }
                } else {
                    let began = h.clock.fetch_add(1, Ordering::SeqCst);
                    let before: Vec<(String, f64)> = h
                        .acked
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, (c, _, at))| *c == chat && *at < began)
                        .map(|(id, (_, t, _))| (id.clone(), *t))
                        .collect();
                    let filter = json!({"chat_id": chat, "time": {"$lt": 1e9}});
                    let rows = s.find("Messages", &filter, &["-time"], Some(8)).await.unwrap();
                    let got = ids(&rows);
                    let floor = if rows.len() == 8 { rows[7]["time"].as_f64().unwrap() } else { f64::MIN };
                    for (id, time) in before {
                        assert!(time < floor || got.contains(&id), "read began after {id} was acknowledged: {got:?}");
                    }
                    seen.lock().unwrap().extend(got);
                }
                if mine_pending.len() > 3 {
                    for (id, t) in mine_pending.drain(..) {
                        t.await.unwrap();
                        let _ = id;
                    }
                }
            }
            for (_, t) in mine_pending {
                t.await.unwrap();
            }
        })
    });
    for w in futures_util::future::join_all(workers).await {
        w.unwrap();
    }
    // Nothing read that never committed (no write failed here: every id seen is in the database).
    let committed = db.find("Messages", &json!({"chat_id": {"$in": ["hot0", "hot1"]}}), &[], None).await.unwrap();
    let committed: HashSet<String> = ids(&committed).into_iter().collect();
    for id in seen.lock().unwrap().iter() {
        assert!(committed.contains(id), "{id} was read but never committed");
    }
}

/// The history checker with the Redis tier (SQLite data), when a Redis URL is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_checker_with_redis() {
    let Ok(redis) = std::env::var("BOTDB_TEST_REDIS_URL") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "BOTDB_TEST_REDIS_URL must be set under CI=true");
        eprintln!("skipping the Redis history checker: BOTDB_TEST_REDIS_URL is not set");
        return;
    };
    let (mut settings, _, dir) = crate::helpers::fresh_settings(crate::helpers::Backend::Sqlite).await.unwrap();
    settings.cache.redis.url = Some(botdb::DatabaseUrl::new(redis));
    settings.cache.redis.key_prefix = format!("botdb-session-{}", fastrand::u32(..));
    let db = Db::open(settings).await.unwrap();
    let t = TestDb::wrap(db, dir);
    history_checker(&t).await;
    t.close().await;
}

/// Write-through: the read right after a create, an update, a save or an increment of a row, by one of its
/// keys, is answered from the cache (and is what the database holds).
async fn a_read_right_after_a_write_is_a_hit(t: &TestDb) {
    let db = &t.db;
    let loads = || db.cache_stats().database_loads;
    let before = loads();
    let created = db.create("PersonInfo", &person("wt1", "first")).await.unwrap();
    let p = db.find_one("PersonInfo", &json!({"person_id": "wt1"}), &[]).await.unwrap().unwrap();
    assert_eq!(p["nickname"], json!("first"));
    assert_eq!(loads(), before, "a read by a unique key right after the create hits");
    // By id: cached once read, then carried across writes.
    let by_id = db.find_one("PersonInfo", &json!({"id": created["id"]}), &[]).await.unwrap().unwrap();
    assert_eq!(by_id["person_id"], json!("wt1"));
    let before = loads();
    db.update("PersonInfo", &json!({"person_id": "wt1"}), &json!({"nickname": "second"})).await.unwrap();
    let p = db.find_one("PersonInfo", &json!({"person_id": "wt1"}), &[]).await.unwrap().unwrap();
    assert_eq!(p["nickname"], json!("second"));
    assert_eq!(loads(), before, "a read right after an update hits");
    // (An update by person_id does not name the row's id: the id entry is only invalidated.)
    let by_id = db.find_one("PersonInfo", &json!({"id": created["id"]}), &[]).await.unwrap().unwrap();
    assert_eq!(by_id["nickname"], json!("second"));
    let before = loads();
    db.save("PersonInfo", &json!({"nickname": "third"}), Some(("person_id", &json!("wt1")))).await.unwrap();
    let p = db.find_one("PersonInfo", &json!({"person_id": "wt1"}), &[]).await.unwrap().unwrap();
    assert_eq!(p["nickname"], json!("third"));
    assert_eq!(loads(), before, "a read right after a save hits");
    // A key read before it exists (a negative entry), then written: the next read hits and finds it.
    assert!(db.find_one("ActionRecords", &json!({"action_id": "a1"}), &[]).await.unwrap().is_none());
    let before = loads();
    db.create("ActionRecords", &action("a1", "c")).await.unwrap();
    let a = db.find_one("ActionRecords", &json!({"action_id": "a1"}), &[]).await.unwrap().unwrap();
    assert_eq!(a["chat_id"], json!("c"));
    assert_eq!(loads(), before, "a negative entry filled by the insert");
    // An increment by a key that holds one row (an image's counter): the entry holds the value it left
    // (SQLite and PostgreSQL return it; MySQL has no `RETURNING`, so there the entry is only invalidated).
    let image = json!({"image_id": "i1", "emoji_hash": "h1", "description": "d", "path": "p", "count": 1,
        "timestamp": 1.0, "type": "emoji"});
    db.create("Images", &image).await.unwrap();
    assert_eq!(db.find_one("Images", &json!({"emoji_hash": "h1"}), &[]).await.unwrap().unwrap()["count"], json!(1));
    for expected in [2, 3] {
        let before = loads();
        assert_eq!(db.increment("Images", &json!({"emoji_hash": "h1"}), "count", &json!(1)).await.unwrap(), 1);
        let i = db.find_one("Images", &json!({"emoji_hash": "h1"}), &[]).await.unwrap().unwrap();
        assert_eq!(i["count"], json!(expected));
        if t.backend != crate::helpers::Backend::Mysql {
            assert_eq!(loads(), before, "a read right after an increment hits");
        }
    }
    // And the entries equal what the database holds.
    let fresh = db.reader();
    let rows = botdb::testing::exec::select(
        fresh,
        &botdb::testing::Select::parse(botdb::model("PersonInfo").unwrap(), &json!({"person_id": "wt1"}), &[], Some(1))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(botdb::Row::clone(&p), rows[0]);
}

fn action(id: &str, chat: &str) -> Value {
    json!({"action_id": id, "time": 1.0, "action_name": "reply", "action_data": "{}", "action_done": true,
        "action_build_into_prompt": false, "action_prompt_display": "", "chat_id": chat,
        "chat_info_stream_id": chat, "chat_info_platform": "qq"})
}

backend_tests!(history_checker, a_read_right_after_a_write_is_a_hit, carried_point_entries_equal_fresh_loads);

/// Concurrent creates, updates by key, saves, increments and key rewrites share batches; after each round
/// every point read (by `person_id` and by `id`) equals the database, whether it was carried across the
/// commits (write-through) or reloaded.
async fn carried_point_entries_equal_fresh_loads(t: &TestDb) {
    let db = &t.db;
    let m = botdb::model("PersonInfo").unwrap();
    let check = async |keys: &[String]| {
        for k in keys {
            for (field, value) in [("person_id", json!(k))] {
                let cached = db.find_one("PersonInfo", &json!({ field: value }), &[]).await.unwrap();
                let sel = botdb::testing::Select::parse(m, &json!({ field: value }), &[], Some(1)).unwrap();
                let fresh = botdb::testing::exec::select(db.reader(), &sel).await.unwrap();
                assert_eq!(cached.map(|r| botdb::Row::clone(&r)), fresh.first().cloned(), "{field} = {value}");
                if let Some(row) = fresh.first() {
                    let by_id = db.find_one("PersonInfo", &json!({"id": row["id"]}), &[]).await.unwrap();
                    assert_eq!(by_id.map(|r| botdb::Row::clone(&r)).as_ref(), Some(row), "id of {k}");
                }
            }
        }
    };
    let mut keys: Vec<String> = vec![];
    for round in 0..6 {
        let mut writes: Vec<futures_util::future::BoxFuture<'_, ()>> = Vec::new();
        for k in 0..6 {
            let key = format!("pk{round}-{k}");
            keys.push(key.clone());
            writes.push(Box::pin(async move {
                db.create("PersonInfo", &person(&key, "n")).await.unwrap();
            }));
            if round > 0 {
                let old = format!("pk{}-{k}", round - 1);
                let nick = format!("r{round}");
                let op = k % 4;
                writes.push(Box::pin(async move {
                    match op {
                        0 => {
                            drop(db.update("PersonInfo", &json!({"person_id": old}), &json!({"nickname": nick})).await)
                        }
                        1 => drop(
                            db.save("PersonInfo", &json!({"nickname": nick}), Some(("person_id", &json!(old)))).await,
                        ),
                        // An increment and an update of one key, likely in one batch.
                        2 => {
                            let (key, delta, nick) = (json!({"person_id": old}), json!(1.5), json!({"nickname": nick}));
                            let inc = db.increment("PersonInfo", &key, "know_times", &delta);
                            let upd = db.update("PersonInfo", &key, &nick);
                            let _ = futures_util::join!(inc, upd);
                        }
                        _ => drop(
                            db.update(
                                "PersonInfo",
                                &json!({"nickname": "n", "person_id": old}),
                                &json!({"nickname": nick}),
                            )
                            .await,
                        ),
                    }
                }));
            }
        }
        // Read everything first so there are entries to carry, then write concurrently.
        check(&keys).await;
        futures_util::future::join_all(writes).await;
        check(&keys).await;
    }
    assert!(db.cache_stats().windows_carried > 0, "entries were carried: {:?}", db.cache_stats());
}
