//! Cached reads through the public name-based API against plain sea-orm on the same SQLite pool, same run:
//! a point read by natural key, and a chat's recent history (8 and 50 rows, a moving `time <` bound). Then
//! the same reads with Redis as the only warm layer (in-process tiers sized 0), when `BOTDB_BENCH_REDIS_URL`
//! is set. Tokio current-thread runtime. Prints p50/p99 (HdrHistogram, 20,000 calls each) before the
//! criterion groups.
//!
//! `cargo bench --bench cache`  (with Redis: `BOTDB_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench cache`)

// Futures of the instrumented API nest deeply.
#![recursion_limit = "256"]

use std::hint::black_box;
use std::time::Instant;

use botdb::entities::{messages, person_info};
use botdb::sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use botdb::{Db, Settings};
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const PEOPLE: usize = 10_000;
const HOT: usize = 1_000;
const CHATS: usize = 100;
const PER_CHAT: usize = 200;

use common::person_key as key;

fn chat(i: usize) -> String {
    format!("{:064x}", i.wrapping_mul(40_503))
}

async fn seed(db: &Db) {
    common::seed_people(db, PEOPLE).await;
    let w = botdb::testing::engine(db).writer();
    for c in 0..CHATS {
        let rows: Vec<String> = (0..PER_CHAT)
            .map(|i| {
                format!(
                    "('m{c}-{i}', {}, '{ch}', '{ch}', 'qq', 'qq', 'u{i}', 'nick', 1.0, 2.0, 'u{i}', '今天天气不错，我们去公园散步吧 {i}', '今天天气不错，我们去公园散步吧 {i}', 0, 0, 0, 0, 0, 0)",
                    1.7e9 + i as f64,
                    ch = chat(c)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO messages (message_id, time, chat_id, chat_info_stream_id, chat_info_platform, chat_info_user_platform, \
             chat_info_user_id, chat_info_user_nickname, chat_info_create_time, chat_info_last_active_time, user_id, \
             processed_plain_text, display_message, memorized_times, is_emoji, is_picid, is_command, is_notify, is_public_notice) VALUES {}",
            rows.join(",")
        );
        w.execute_unprepared(&sql).await.unwrap();
    }
}

fn open(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir, redis_only: Option<&str>) -> Db {
    let mut s = Settings::for_url(format!("sqlite://{}/bench.sqlite?mode=rwc", dir.path().display()));
    s.preload.enabled = false;
    if let Some(url) = redis_only {
        s.cache.redis.url = Some(botdb::DatabaseUrl::new(url));
        s.cache.redis.key_prefix = format!("botdb-bench-{}", std::process::id());
        s.cache.l1_max_bytes = 0;
        s.cache.l2_max_bytes = 0;
    }
    rt.block_on(Db::open(s)).unwrap()
}

struct Reads {
    db: Db,
    conn: DatabaseConnection,
    i: usize,
}

impl Reads {
    async fn botdb_point(&mut self) {
        self.i = (self.i + 7919) % HOT;
        let f = json!({ "person_id": key(self.i) });
        black_box(self.db.find_one("PersonInfo", &f, &[]).await.unwrap().unwrap());
    }

    async fn sea_point(&mut self) {
        self.i = (self.i + 7919) % HOT;
        let q = person_info::Entity::find().filter(person_info::Column::PersonId.eq(key(self.i)));
        black_box(q.one(&self.conn).await.unwrap().unwrap());
    }

    fn next_chat(&mut self) -> (String, f64) {
        self.i += 1;
        // A moving bound, as the reply path has: "now" advances with every call.
        (chat(self.i % 20), 1.8e9 + self.i as f64 * 1e-3)
    }

    async fn botdb_history(&mut self, n: u64) {
        let (c, t) = self.next_chat();
        let f = json!({ "chat_id": c, "time": { "$lt": t } });
        let rows = self.db.find("Messages", &f, &["-time"], Some(n)).await.unwrap();
        assert_eq!(rows.len() as u64, n);
        black_box(rows);
    }

    async fn sea_history(&mut self, n: u64) {
        let (c, t) = self.next_chat();
        let q = messages::Entity::find()
            .filter(messages::Column::ChatId.eq(c))
            .filter(messages::Column::Time.lt(t))
            .order_by_desc(messages::Column::Time)
            .limit(n);
        black_box(q.all(&self.conn).await.unwrap());
    }
}

macro_rules! percentiles {
    ($rt:expr, $label:expr, $call:expr) => {{
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        $rt.block_on(async {
            for _ in 0..2_000 {
                $call.await;
            }
            for _ in 0..20_000 {
                let t = Instant::now();
                $call.await;
                h.record(t.elapsed().as_nanos() as u64).unwrap();
            }
        });
        let (p50, p99) = (h.value_at_quantile(0.5) as f64 / 1e3, h.value_at_quantile(0.99) as f64 / 1e3);
        println!("{:<44} p50 {:>9.2} µs   p99 {:>9.2} µs", $label, p50, p99);
        p50
    }};
}

fn report(rt: &tokio::runtime::Runtime, r: &mut Reads, tag: &str) {
    let bp = percentiles!(rt, format!("{tag}botdb point read (cached)"), r.botdb_point());
    let sp = percentiles!(rt, "sea-orm point read", r.sea_point());
    println!("  point read speed-up at p50: {:.1}x", sp / bp);
    for n in [8u64, 50] {
        let b = percentiles!(rt, format!("{tag}botdb recent history {n} (cached)"), r.botdb_history(n));
        let s = percentiles!(rt, format!("sea-orm recent history {n}"), r.sea_history(n));
        println!("  recent history {n} speed-up at p50: {:.1}x", s / b);
    }
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&rt, &dir, None);
    rt.block_on(seed(&db));
    let conn = botdb::testing::engine(&db).reader().clone();
    let mut r = Reads { db, conn, i: 0 };
    report(&rt, &mut r, "");
    println!("  cache: {:?}", r.db.cache_stats());
    if let Ok(url) = std::env::var("BOTDB_BENCH_REDIS_URL") {
        let db = open(&rt, &dir, Some(&url));
        let conn = botdb::testing::engine(&db).reader().clone();
        let mut rr = Reads { db, conn, i: 0 };
        report(&rt, &mut rr, "[redis only] ");
        println!("  cache: {:?}", rr.db.cache_stats());
        rt.block_on(rr.db.shutdown());
    }
    let mut g = c.benchmark_group("cached_reads");
    let (db, mut i) = (r.db.clone(), 0usize);
    g.bench_function("botdb_point_read", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % HOT;
            let (db, f) = (&db, json!({ "person_id": key(i) }));
            async move { black_box(db.find_one("PersonInfo", &f, &[]).await.unwrap()) }
        })
    });
    g.finish();
}

criterion_group!(benches, cache);
criterion_main!(benches);
