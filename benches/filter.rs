//! The micro paths: validating a JSON filter against the registry and, on a miss, building its SQL (every
//! read); and one batch flush of 64 message inserts through the scheduler's executor on SQLite (FULL), in one
//! transaction. `cargo bench --bench filter`

use std::hint::black_box;

use botdb::model;
use botdb::sea_orm::DbBackend;
use botdb::testing::Select;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn filter(c: &mut Criterion) {
    let m = model("Messages").unwrap();
    let history = json!({"chat_id": "f".repeat(64), "time": {"$lt": 1.75e9}});
    let order = ["-time".to_owned()];
    let mut g = c.benchmark_group("filter");
    g.bench_function("validate_recent_history", |b| {
        b.iter(|| black_box(Select::parse(m, &history, &order, Some(8)).unwrap()))
    });
    let complex = json!({"chat_id": {"$in": ["a", "b", "c"]}, "time": {"$gte": 1.0, "$lt": 2.0}, "user_id": {"$ne": null}, "is_emoji": false});
    g.bench_function("validate_complex", |b| {
        b.iter(|| black_box(Select::parse(m, &complex, &order, Some(50)).unwrap()))
    });
    let sel = Select::parse(m, &history, &order, Some(8)).unwrap();
    g.bench_function("build_sql_sqlite", |b| b.iter(|| black_box(sel.build(DbBackend::Sqlite))));
    g.bench_function("build_sql_postgres", |b| b.iter(|| black_box(sel.build(DbBackend::Postgres))));
    g.finish();
}

fn flush(c: &mut Criterion) {
    use botdb::testing::NewRow;
    use botdb::testing::{WriteOp, executor};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = botdb::Settings::for_url(format!("sqlite://{}/f.sqlite?mode=rwc", dir.path().display()));
    s.preload.enabled = false;
    let db = rt.block_on(botdb::Db::open(s)).unwrap();
    let m = model("Messages").unwrap();
    let mut n = 0u64;
    let mut g = c.benchmark_group("batch");
    g.sample_size(30);
    g.bench_function("flush_64_message_inserts", |b| {
        b.to_async(&rt).iter(|| {
            let ops: Vec<WriteOp> = (0..64)
                .map(|i| {
                    n += 1;
                    let chat = format!("{:064x}", i % 8);
                    let row = json!({"message_id": format!("m{n}"), "time": n as f64, "chat_id": chat, "chat_info_stream_id": chat,
                        "chat_info_platform": "qq", "chat_info_user_platform": "qq", "chat_info_user_id": "1",
                        "chat_info_user_nickname": "n", "chat_info_create_time": 0.0, "chat_info_last_active_time": 0.0,
                        "processed_plain_text": "今天天气不错，我们去公园散步吧", "display_message": "今天天气不错"});
                    WriteOp::Insert(NewRow::parse(m, &row).unwrap())
                })
                .collect();
            let engine = botdb::testing::engine(&db).clone();
            async move { black_box(executor::execute(&engine, std::sync::Arc::new(ops), &[]).await.unwrap()) }
        })
    });
    g.finish();
}

criterion_group!(benches, filter, flush);
criterion_main!(benches);
