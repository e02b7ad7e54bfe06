//! Durable write throughput on SQLite (`synchronous = FULL`, WAL), 64 concurrent writers, message-sized
//! rows, same run: (a) plain sea-orm, one insert per call; (b) plain sea-orm `insert_many`, 1,000 rows per
//! transaction; botdb through the batch scheduler (each writer awaits its ticket, i.e. its commit). Then the
//! ack latency at half botdb's maximum rate (open loop), and the batched-write ratio on the bot's write mix.
//! Tokio multi-thread runtime, 2 workers. Each phase runs `BOTDB_BENCH_SECS` seconds (default 5).
//!
//! `cargo bench --bench write`

// Futures of the instrumented API nest deeply.
#![recursion_limit = "256"]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use botdb::entities::messages;
use botdb::sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, TransactionTrait};
use botdb::{Db, Settings};
use serde_json::json;

const WRITERS: usize = 64;
const TEXT: &str = "今天天气不错，我们去公园散步吧。After that, let's grab some food and talk about the weekend plans!";

fn secs() -> Duration {
    Duration::from_secs(std::env::var("BOTDB_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5))
}

fn data(w: usize, n: u64) -> serde_json::Value {
    let chat = format!("{:064x}", w % 20);
    json!({"message_id": format!("w{w}-{n}-{}", fastrand::u64(..)), "time": 1.7e9 + n as f64, "chat_id": chat,
        "chat_info_stream_id": chat, "chat_info_platform": "qq", "chat_info_user_platform": "qq",
        "chat_info_user_id": format!("{}", 100_000 + w), "chat_info_user_nickname": "nick", "chat_info_create_time": 1.0,
        "chat_info_last_active_time": 2.0, "user_id": format!("{}", 100_000 + w), "user_platform": "qq",
        "user_nickname": "nick", "processed_plain_text": TEXT, "display_message": TEXT})
}

fn active(w: usize, n: u64) -> messages::ActiveModel {
    let chat = format!("{:064x}", w % 20);
    messages::ActiveModel {
        message_id: Set(format!("a{w}-{n}-{}", fastrand::u64(..))),
        time: Set(1.7e9 + n as f64),
        chat_id: Set(chat.clone()),
        chat_info_stream_id: Set(chat),
        chat_info_platform: Set("qq".into()),
        chat_info_user_platform: Set("qq".into()),
        chat_info_user_id: Set(format!("{}", 100_000 + w)),
        chat_info_user_nickname: Set("nick".into()),
        chat_info_create_time: Set(1.0),
        chat_info_last_active_time: Set(2.0),
        user_id: Set(Some(format!("{}", 100_000 + w))),
        processed_plain_text: Set(Some(TEXT.into())),
        display_message: Set(Some(TEXT.into())),
        memorized_times: Set(0),
        is_emoji: Set(false),
        is_picid: Set(false),
        is_command: Set(false),
        is_notify: Set(false),
        is_public_notice: Set(false),
        ..Default::default()
    }
}

async fn open(dir: &tempfile::TempDir, name: &str) -> Db {
    // Environment overrides (BOTDB__BATCH__MAX_LINGER_MS=…) apply, for experiments.
    let mut s = Settings::load(None).unwrap();
    s.database.url = botdb::DatabaseUrl::new(format!("sqlite://{}/{name}.sqlite?mode=rwc", dir.path().display()));
    s.preload.enabled = false;
    Db::open(s).await.unwrap()
}

/// Runs `WRITERS` closed-loop writers for the phase duration; returns rows per second.
async fn closed_loop<F, Fut>(f: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let rows = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (f, stop, rows) = (f.clone(), stop.clone(), rows.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    rows.fetch_add(f(w, n).await, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(secs()).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    rows.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let only_botdb = std::env::var("BOTDB_BENCH_ONLY").is_ok();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        println!("SQLite synchronous=FULL, WAL; {WRITERS} concurrent writers; {:?} per phase", secs());

        let (mut one, mut many) = (f64::NAN, f64::NAN);
        if !only_botdb {
        let base = open(&dir, "a").await;
        let conn = botdb::testing::engine(&base).reader().clone();
        one = closed_loop(move |w, n| {
            let conn = conn.clone();
            async move {
                active(w, n).insert(&conn).await.unwrap();
                1
            }
        })
        .await;
        println!("(a) sea-orm, one insert per call:        {one:>10.0} rows/s");

        let base = open(&dir, "b").await;
        let conn = botdb::testing::engine(&base).writer().clone();
        let start = Instant::now();
        let mut many_rows = 0u64;
        let mut n = 0u64;
        while start.elapsed() < secs() {
            let txn = conn.begin().await.unwrap();
            let batch: Vec<_> = (0..1000).map(|i| active(i % WRITERS, n + i as u64)).collect();
            messages::Entity::insert_many(batch).exec(&txn).await.unwrap();
            txn.commit().await.unwrap();
            many_rows += 1000;
            n += 1000;
        }
        many = many_rows as f64 / start.elapsed().as_secs_f64();
        println!("(b) sea-orm insert_many, 1,000 rows/txn: {many:>10.0} rows/s");
        }

        if only_botdb {
            // Diagnostic: botdb's executor alone, 64-row batches, one task, no callers competing for the CPU.
            let db = open(&dir, "x").await;
            let m = botdb::model("Messages").unwrap();
            let start = Instant::now();
            let mut rows = 0u64;
            let mut t_parse = Duration::ZERO;
            while start.elapsed() < secs() {
                let t0 = Instant::now();
                let ops: Vec<_> = (0..64)
                    .map(|i| botdb::testing::WriteOp::Insert(botdb::testing::NewRow::parse(m, &data(i, rows + i as u64)).unwrap()))
                    .collect();
                t_parse += t0.elapsed();
                botdb::testing::executor::execute(botdb::testing::engine(&db), Arc::new(ops), &[]).await.unwrap();
                rows += 64;
            }
            let el = start.elapsed().as_secs_f64();
            let conn = botdb::testing::engine(&db).writer().clone();
            let s2 = Instant::now();
            let mut r2 = 0u64;
            while s2.elapsed() < secs() {
                let txn = conn.begin().await.unwrap();
                let batch: Vec<_> = (0..64).map(|i| active(i, r2 + i as u64)).collect();
                messages::Entity::insert_many(batch).exec(&txn).await.unwrap();
                txn.commit().await.unwrap();
                r2 += 64;
            }
            println!("(diag) sea-orm insert_many 64 rows/txn: {:.0} rows/s", r2 as f64 / s2.elapsed().as_secs_f64());
            let s3 = Instant::now();
            let mut n3 = 0u64;
            while s3.elapsed() < secs() {
                let txn = conn.begin().await.unwrap();
                active(0, n3).insert(&txn).await.unwrap();
                txn.commit().await.unwrap();
                n3 += 1;
            }
            println!("(diag) one-row transactions on the writer: {:.2} ms each", s3.elapsed().as_secs_f64() * 1e3 / n3 as f64);
            println!("(diag) executor alone, 64-row batches: {:.0} rows/s, {:.2} ms per batch ({:.2} ms building rows)",
                rows as f64 / el, el * 1e3 / (rows / 64) as f64, t_parse.as_secs_f64() * 1e3 / (rows / 64) as f64);
        }
        let db = open(&dir, "c").await;
        let d = db.clone();
        let ours = closed_loop(move |w, n| {
            let d = d.clone();
            async move {
                d.create("Messages", &data(w, n)).await.unwrap();
                1
            }
        })
        .await;
        let st = db.batch_stats().unwrap();
        println!("botdb batch scheduler (acked = committed): {ours:>8.0} rows/s   {:.1}x (a), {:.2}x (b); mean batch {:.1} rows",
            ours / one, ours / many, st.mean_batch_rows.unwrap_or(0.0));
        println!("  mean flush {:.2} ms, mean wait of a batch's oldest write {:.2} ms, linger now {:.2} ms",
            st.mean_flush_ms.unwrap_or(0.0), st.mean_wait_ms.unwrap_or(0.0), st.linger_ms);

        // The same 64 writers, each keeping 32 tickets in flight (it still awaits every one of them).
        let db2 = open(&dir, "p").await;
        let d = db2.clone();
        let piped = closed_loop(move |w, n| {
            let d = d.clone();
            async move {
                let m = botdb::model("Messages").unwrap();
                let mut tickets = Vec::with_capacity(32);
                for k in 0..32 {
                    let row = botdb::testing::NewRow::parse(m, &data(w, n * 32 + k)).unwrap();
                    let op = botdb::testing::WriteOp::Insert(row);
                    tickets.push(d.submit(op, botdb::Priority::Normal).await.unwrap());
                }
                for t in tickets {
                    t.await.unwrap();
                }
                32
            }
        })
        .await;
        let st = db2.batch_stats().unwrap();
        println!("botdb, each writer 32 tickets in flight:   {piped:>8.0} rows/s   {:.1}x (a), {:.2}x (b); mean batch {:.1} rows",
            piped / one, piped / many, st.mean_batch_rows.unwrap_or(0.0));
        db2.shutdown().await;

        // Ack latency at half the maximum rate, open loop: latency from the scheduled time to the ack.
        let rate = ours / 2.0;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let hist = Arc::new(std::sync::Mutex::new(hdrhistogram::Histogram::<u64>::new(3).unwrap()));
        let start = tokio::time::Instant::now();
        let total = (rate * secs().as_secs_f64()) as u64;
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let at = start + interval * i as u32;
            tokio::time::sleep_until(at).await;
            let (d, hist) = (db.clone(), hist.clone());
            tasks.push(tokio::spawn(async move {
                d.create("Messages", &data(i as usize % WRITERS, i)).await.unwrap();
                hist.lock().unwrap().record(at.elapsed().as_micros() as u64).unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let h = hist.lock().unwrap().clone();
        println!("ack latency at {rate:.0} rows/s (half max), open loop: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.value_at_quantile(0.5) as f64 / 1e3, h.value_at_quantile(0.99) as f64 / 1e3, h.max() as f64 / 1e3);
        drop(h);
        db.shutdown().await;

        // The bot's write mix per message: insert message, update it by message_id, a model-call row every
        // other message, an action every tenth, an image counter increment every seventh.
        let db = open(&dir, "d").await;
        let d = db.clone();
        let mixed = closed_loop(move |w, n| {
            let d = d.clone();
            async move {
                let m = data(w, n);
                let id = m["message_id"].clone();
                d.create("Messages", &m).await.unwrap();
                d.update("Messages", &json!({"message_id": id}), &json!({"interest_value": 0.7})).await.unwrap();
                let mut rows = 2;
                if n % 2 == 0 {
                    d.create("LLMUsage", &json!({"model_name": "m", "model_assign_name": "a", "model_api_provider": "p",
                        "user_id": "u", "request_type": "chat", "endpoint": "/", "prompt_tokens": 100, "completion_tokens": 20,
                        "total_tokens": 120, "cost": 0.001, "status": "success"})).await.unwrap();
                    rows += 1;
                }
                if n % 7 == 0 {
                    d.increment("Images", &json!({"emoji_hash": format!("{:032x}", w % 5)}), "count", &json!(1)).await.unwrap();
                    rows += 1;
                }
                rows
            }
        })
        .await;
        let st = db.batch_stats().unwrap();
        println!("bot write mix: {mixed:.0} row-writes/s; batched-write ratio {:.4}; mean batch {:.1}; {} batches",
            st.batched_write_ratio.unwrap_or(0.0), st.mean_batch_rows.unwrap_or(0.0), st.batches);
        db.shutdown().await;
    });
}
