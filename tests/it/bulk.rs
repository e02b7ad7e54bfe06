//! Bulk writes on every backend: each item's own outcome in order, a bad item failing alone (refused by
//! validation or by the database), the rest committed.

use botdb::Error;
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(bulk_writes_answer_each_item);

fn stream(id: &str, name: &str) -> Value {
    json!({"stream_id": id, "create_time": 1.0, "last_active_time": 1.0, "platform": "qq", "user_platform": "qq",
        "user_id": "u", "user_nickname": "n", "group_name": name})
}

fn message(i: usize) -> Value {
    json!({"message_id": format!("m{i}"), "time": i as f64, "chat_id": "c", "chat_info_stream_id": "c",
        "chat_info_platform": "qq", "chat_info_user_platform": "qq", "chat_info_user_id": "u",
        "chat_info_user_nickname": "n", "chat_info_create_time": 0.0, "chat_info_last_active_time": 0.0})
}

async fn bulk_writes_answer_each_item(t: &TestDb) {
    let db = &t.db;
    // 200 messages at once, one of them invalid.
    let mut rows: Vec<Value> = (0..200).map(message).collect();
    rows[50] = json!({"message_id": "no-time"});
    let created = db.create_many("Messages", &rows).await.unwrap();
    assert_eq!(created.len(), 200);
    assert!(matches!(created[50], Err(Error::MissingRequired { .. })), "{:?}", created[50]);
    assert!(
        created
            .iter()
            .enumerate()
            .all(|(i, r)| i == 50 || r.as_ref().is_ok_and(|r| r["message_id"] == json!(format!("m{i}"))))
    );
    assert_eq!(db.count("Messages", &json!({})).await.unwrap(), 199);

    // The interest of every message by its message_id; an unknown key, a bad value and a null key.
    let mut items: Vec<(Value, Value)> =
        (0..200).map(|i| (json!(format!("m{i}")), json!({"interest_value": i as f64 / 200.0}))).collect();
    items[7].1 = json!({"interest_value": "high"});
    items.push((json!("nobody"), json!({"interest_value": 1.0})));
    items.push((Value::Null, json!({"interest_value": 1.0})));
    let updated = db.update_many("Messages", "message_id", &items).await.unwrap();
    assert_eq!(updated.len(), 202);
    assert!(matches!(updated[7], Err(Error::InvalidValue { .. })));
    assert_eq!(updated[50].as_ref().ok(), Some(&0), "the message that was never created");
    assert_eq!(updated[200].as_ref().ok(), Some(&0));
    assert!(matches!(updated[201], Err(Error::InvalidRequest(_))));
    assert_eq!(updated.iter().filter(|r| r.as_ref().is_ok_and(|n| *n == 1)).count(), 198);
    let m9 = db.find_one("Messages", &json!({"message_id": "m9"}), &[]).await.unwrap().unwrap();
    assert_eq!(m9["interest_value"], json!(9.0 / 200.0));
    let m7 = db.find_one("Messages", &json!({"message_id": "m7"}), &[]).await.unwrap().unwrap();
    assert_eq!(m7["interest_value"], json!(null), "the bad item changed nothing");

    // Streams: created, then upserted (two updated, one new), with a duplicate the database refuses.
    let first =
        db.create_many("ChatStreams", &[stream("s1", "one"), stream("s2", "two"), stream("s1", "dup")]).await.unwrap();
    assert!(first[0].is_ok() && first[1].is_ok(), "{first:?}");
    assert!(matches!(first[2], Err(Error::Constraint { .. })), "{:?}", first[2]);
    let upserted = db
        .upsert_many(
            "ChatStreams",
            "stream_id",
            &[stream("s1", "ONE"), stream("s3", "three"), stream("s2", "TWO"), json!({"group_name": "x"})],
        )
        .await
        .unwrap();
    assert!(matches!(upserted[3], Err(Error::InvalidRequest(_))), "{:?}", upserted[3]);
    let names: Vec<Value> = db
        .find("ChatStreams", &json!({}), &["stream_id"], None)
        .await
        .unwrap()
        .iter()
        .map(|r| r["group_name"].clone())
        .collect();
    assert_eq!(names, vec![json!("ONE"), json!("TWO"), json!("three")]);
    assert_eq!(upserted[0].as_ref().unwrap()["id"], first[0].as_ref().unwrap()["id"], "updated in place");

    // Errors of the whole call.
    assert!(matches!(db.create_many("Nope", &[]).await, Err(Error::UnknownModel { .. })));
    assert!(matches!(db.update_many("Messages", "message_idd", &[]).await, Err(Error::UnknownField { .. })));
    assert!(matches!(db.upsert_many("ChatStreams", "stream", &[]).await, Err(Error::UnknownField { .. })));
}
