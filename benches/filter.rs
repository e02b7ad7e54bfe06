//! The micro path of every read before the cache: validating a JSON filter against the registry and, on a
//! miss, building its SQL. `cargo bench --bench filter`

use std::hint::black_box;

use botdb::core::exec::Select;
use botdb::core::registry;
use botdb::sea_orm::DbBackend;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn filter(c: &mut Criterion) {
    let m = registry::model("Messages").unwrap();
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

criterion_group!(benches, filter);
criterion_main!(benches);
