//! How long a write by another connection stays invisible through botdb's cache on SQLite: another
//! connection (as another process, or the bot's own SQLAlchemy code, would) updates a row a handle has
//! cached, 1,000 times at random moments; the handle is read until it answers the new value.
//!
//! `cargo run --release --example foreign_writes`

#![recursion_limit = "256"]
use botdb::sea_orm::{ConnectionTrait, Database};
use botdb::{Db, Settings};
use serde_json::json;
use std::time::{Duration, Instant};
#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.sqlite?mode=rwc", dir.path().display());
    let db = Db::open(Settings::for_url(&url)).await.unwrap();
    db.create("PersonInfo", &json!({"person_id": "p1", "platform": "qq", "user_id": "1", "nickname": "v0"}))
        .await
        .unwrap();
    let other = Database::connect(&url).await.unwrap();
    let mut d = vec![];
    for i in 1..=1000 {
        db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap();
        other.execute_unprepared(&format!("UPDATE person_info SET nickname = 'v{i}'")).await.unwrap();
        let t = Instant::now();
        loop {
            let r = db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap();
            if r["nickname"] == json!(format!("v{i}")) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        d.push(t.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..200_000))).await;
    }
    d.sort_by(|a, b| a.total_cmp(b));
    println!(
        "staleness over {} foreign writes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        d.len(),
        d[d.len() / 2],
        d[d.len() * 99 / 100],
        d[d.len() - 1]
    );
}
