//! A point read by natural key (`PersonInfo.person_id`) on SQLite: botdb's name-based API against sea-orm's
//! own `find().filter().one()` on the same connection pool, same run. Current-thread tokio runtime.
//!
//! `cargo bench --bench point_read`

// Futures of the instrumented API nest deeply.
#![recursion_limit = "256"]

use std::hint::black_box;

use botdb::entities::person_info;
use botdb::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use botdb::{Db, Settings};
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const PEOPLE: usize = 10_000;

use common::person_key as key;

fn setup(rt: &tokio::runtime::Runtime) -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::for_url(format!("sqlite://{}/bench.sqlite?mode=rwc", dir.path().display()));
    let db = rt.block_on(async {
        let db = Db::open(settings).await.unwrap();
        common::seed_people(&db, PEOPLE).await;
        db
    });
    (db, dir)
}

fn point_read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (db, _dir) = setup(&rt);
    let mut g = c.benchmark_group("point_read_person_by_key");
    let mut i = 0usize;
    g.bench_function("botdb_name_based_find_one", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % PEOPLE;
            let filter = json!({ "person_id": key(i) });
            let db = &db;
            async move { black_box(db.find_one("PersonInfo", &filter, &[]).await.unwrap().unwrap()) }
        })
    });
    let conn = botdb::testing::engine(&db).reader().clone();
    g.bench_function("sea_orm_find_filter_one", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % PEOPLE;
            let k = key(i);
            let conn = &conn;
            async move {
                black_box(
                    person_info::Entity::find()
                        .filter(person_info::Column::PersonId.eq(k))
                        .one(conn)
                        .await
                        .unwrap()
                        .unwrap(),
                )
            }
        })
    });
    g.finish();
}

criterion_group!(benches, point_read);
criterion_main!(benches);
