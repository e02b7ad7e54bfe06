//! The bot's query shapes on every backend: the newest rows per chat for a set of chats (`find_per`),
//! projections (`find_fields`), checked against the rows written.

use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(newest_per_chat_and_projections);

async fn newest_per_chat_and_projections(t: &TestDb) {
    let db = &t.db;
    let mut rng = fastrand::Rng::with_seed(0x9e7);
    let mut written: Vec<(String, f64, String)> = Vec::new();
    for i in 0..120 {
        let chat = format!("c{}", rng.usize(..4));
        let time = 1000.0 + i as f64;
        let id = format!("m{i}");
        db.create(
            "Messages",
            &json!({"message_id": id, "time": time, "chat_id": chat, "chat_info_stream_id": chat,
                "chat_info_platform": "qq", "chat_info_user_platform": "qq", "chat_info_user_id": "u",
                "chat_info_user_nickname": "n", "chat_info_create_time": 0.0, "chat_info_last_active_time": 0.0,
                "is_command": i % 5 == 0}),
        )
        .await
        .unwrap();
        written.push((chat, time, id));
    }
    let chats = [json!("c2"), json!("c0"), json!("nobody"), json!("c3")];
    let want = |chat: &Value, since: f64, commands: bool| -> Vec<String> {
        let mut rows: Vec<&(String, f64, String)> = written
            .iter()
            .enumerate()
            .filter(|(i, (c, t, _))| json!(c) == *chat && *t > since && (commands || i % 5 != 0))
            .map(|(_, r)| r)
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        rows.iter().take(5).map(|r| r.2.clone()).collect()
    };
    for round in 0..2 {
        // (The second round is answered from the cache.)
        for (filter, since, commands) in
            [(json!({}), 0.0, true), (json!({"time": {"$gt": 1050.0}, "is_command": false}), 1050.0, false)]
        {
            let groups = db.find_per("Messages", "chat_id", &chats, &filter, &["-time"], 5).await.unwrap();
            assert_eq!(groups.len(), 4);
            for ((chat, rows), asked) in groups.iter().zip(&chats) {
                assert_eq!(chat, asked, "groups in the order asked");
                let ids: Vec<String> = rows.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect();
                assert_eq!(ids, want(chat, since, commands), "round {round}, {chat}, {filter}");
            }
        }
    }
    let picked = db
        .find_fields("Messages", &json!({"chat_id": "c0"}), &["message_id", "time"], &["-time"], Some(2))
        .await
        .unwrap();
    assert_eq!(picked.len(), 2);
    for (row, id) in picked.iter().zip(want(&json!("c0"), 0.0, true)) {
        assert_eq!(row.keys().collect::<Vec<_>>(), vec!["message_id", "time"]);
        assert_eq!(row["message_id"], json!(id));
    }
    assert!(matches!(
        db.find_fields("Messages", &json!({}), &["nope"], &[], None).await,
        Err(botdb::Error::UnknownField { .. })
    ));
    assert!(matches!(
        db.find_per("Messages", "chat", &chats, &json!({}), &[], 1).await,
        Err(botdb::Error::UnknownField { .. })
    ));
}
