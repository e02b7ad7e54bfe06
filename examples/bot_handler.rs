//! A bot's message handler on botdb, on embedded SQLite: what one incoming message does to the database.
//!
//! ```sh
//! cargo run --example bot_handler            # a database in a temporary folder
//! cargo run --example bot_handler -- data/bot.sqlite
//! ```

#![recursion_limit = "256"]

use botdb::{Db, Settings};
use serde_json::json;

/// Handles one incoming message: reads the chat's stream, the speaker and the recent history, stores the
/// message, marks it, and records the model call that produced a reply.
async fn handle(db: &Db, chat: &str, user: &str, message_id: &str, text: &str, now: f64) -> botdb::Result<()> {
    let stream = db.find_one("ChatStreams", &json!({ "stream_id": chat }), &[]).await?;
    let person = db.find_one("PersonInfo", &json!({ "person_id": format!("qq:{user}") }), &[]).await?;
    // Queue the insert and the update; both resolve after COMMIT, in submission order.
    let insert = db
        .submit_create(
            "Messages",
            &json!({ "message_id": message_id, "time": now, "chat_id": chat, "user_id": user,
                     "processed_plain_text": text, "chat_info_stream_id": chat, "chat_info_platform": "qq",
                     "chat_info_user_platform": "qq", "chat_info_user_id": user, "chat_info_user_nickname": "Ann",
                     "chat_info_create_time": 1.7e9, "chat_info_last_active_time": now }),
        )
        .await?;
    let mark =
        db.submit_update("Messages", &json!({ "message_id": message_id }), &json!({ "interest_value": 0.8 })).await?;
    // The reply path: the chat's recent history before now, newest first (answered from the cache).
    let history = db.find("Messages", &json!({ "chat_id": chat, "time": { "$lt": now } }), &["-time"], Some(8)).await?;
    let row = insert.await?.into_row().unwrap_or_default();
    let matched = mark.await?.count().unwrap_or(0);
    db.create(
        "LLMUsage",
        &json!({ "model_name": "m", "model_assign_name": "reply", "model_api_provider": "p", "user_id": user,
                 "request_type": "chat", "endpoint": "/v1/chat", "prompt_tokens": 900, "completion_tokens": 60,
                 "total_tokens": 960, "cost": 0.002, "status": "success" }),
    )
    .await?;
    println!(
        "message {} stored as id {} (marked: {matched}); stream known: {}, person known: {}, history: {} rows",
        message_id,
        row.get("id").cloned().unwrap_or_default(),
        stream.is_some(),
        person.is_some(),
        history.len()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> botdb::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| botdb::Error::Config(e.to_string()))?;
    let path = std::env::args().nth(1).unwrap_or_else(|| format!("{}/bot.sqlite", dir.path().display()));
    let db = Db::open(Settings::for_url(format!("sqlite://{path}?mode=rwc"))).await?;
    db.create(
        "ChatStreams",
        &json!({ "stream_id": "chat-1", "create_time": 1.7e9, "last_active_time": 1.7e9, "platform": "qq",
                 "user_platform": "qq", "user_id": "u1", "user_nickname": "Ann" }),
    )
    .await?;
    db.save(
        "PersonInfo",
        &json!({ "person_id": "qq:u1", "platform": "qq", "user_id": "u1", "nickname": "Ann" }),
        Some(("person_id", &json!("qq:u1"))),
    )
    .await?;
    for i in 0..5 {
        handle(&db, "chat-1", "u1", &format!("m{i}"), "hello", 1.7e9 + f64::from(i)).await?;
    }
    println!("cache: {:?}", db.cache_stats());
    db.shutdown().await;
    Ok(())
}
