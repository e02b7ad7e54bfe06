//! Keyset pages against OFFSET pages deep into a big table: 1,000,000 `messages` rows on SQLite, a page of
//! 1,000 rows in id order at the start, the middle and the end, by `find_page` (OFFSET) and by
//! `find_after` (keyset by id). Each page read 5 times, past the cache's benefit (a new page each time).
//!
//! `cargo run --release --example paging`

#![recursion_limit = "256"]

use std::time::Instant;

use botdb::{Db, Settings};
use serde_json::json;

#[tokio::main]
async fn main() -> botdb::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| botdb::Error::Config(e.to_string()))?;
    let mut settings = Settings::for_url(format!("sqlite://{}/paging.sqlite?mode=rwc", dir.path().display()));
    settings.preload.enabled = false;
    settings.cache.enabled = false;
    let db = Db::open(settings).await?;
    const ROWS: u64 = 1_000_000;
    let started = Instant::now();
    for chunk in 0..ROWS / 10_000 {
        let rows: Vec<_> = (0..10_000)
            .map(|i| {
                let n = chunk * 10_000 + i;
                json!({"message_id": format!("m{n}"), "time": n as f64, "chat_id": format!("c{}", n % 200),
                    "chat_info_stream_id": "s", "chat_info_platform": "qq", "chat_info_user_platform": "qq",
                    "chat_info_user_id": "u", "chat_info_user_nickname": "n", "chat_info_create_time": 0.0,
                    "chat_info_last_active_time": 0.0, "processed_plain_text": "今天天气不错，我们去公园散步吧"})
            })
            .collect();
        db.insert_many("Messages", &rows).await?;
    }
    println!("{ROWS} rows written in {:.1} s", started.elapsed().as_secs_f64());
    for depth in [0, ROWS / 2, ROWS - 1_000] {
        let (mut offset_ms, mut keyset_ms) = (Vec::new(), Vec::new());
        for k in 0..5u64 {
            let at = depth + k * 7;
            let t = Instant::now();
            let page = db.find_page("Messages", &json!({}), &["id"], Some(1_000), at).await?;
            offset_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let after = page.first().and_then(|r| r["id"].as_i64()).unwrap_or(1) - 1;
            let t = Instant::now();
            let keyset = db.find_after("Messages", &json!({}), after, 1_000).await?;
            keyset_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(page.first().map(|r| r["id"].clone()), keyset.first().map(|r| r["id"].clone()));
        }
        offset_ms.sort_by(f64::total_cmp);
        keyset_ms.sort_by(f64::total_cmp);
        println!(
            "page of 1,000 at row {depth:>7}: OFFSET median {:.1} ms, keyset median {:.1} ms",
            offset_ms[2], keyset_ms[2]
        );
    }
    db.shutdown().await;
    Ok(())
}
