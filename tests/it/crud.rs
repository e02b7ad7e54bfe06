//! The name-based CRUD and the filter language, on every backend.

use botdb::{QueryOutput, QueryRequest, QueryType};
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(get_create_update_delete_count, filters_and_order, save_upserts_by_key, concurrent_saves_keep_one_row);

fn msg(i: i64, chat: &str, time: f64) -> Value {
    json!({
        "message_id": format!("m{i}"), "time": time, "chat_id": chat,
        "chat_info_stream_id": chat, "chat_info_platform": "qq", "chat_info_user_platform": "qq",
        "chat_info_user_id": format!("u{}", i % 3), "chat_info_user_nickname": "nick",
        "chat_info_create_time": 1.0, "chat_info_last_active_time": 2.0,
        "processed_plain_text": format!("text {i} 你好 🎉"),
        "interest_value": if i % 4 == 0 { Value::Null } else { json!(i as f64 / 10.0) },
        "user_id": format!("u{}", i % 3),
    })
}

async fn get_create_update_delete_count(t: &TestDb) {
    let db = &t.db;
    let created = db.create("Messages", &msg(1, "c1", 100.0)).await.unwrap();
    assert!(created["id"].as_i64().unwrap() > 0);
    assert_eq!(created["memorized_times"], json!(0));
    assert_eq!(created["is_emoji"], json!(false));
    assert_eq!(created["should_reply"], json!(false));
    assert_eq!(created.len(), 39, "every column is in the row");
    for i in 2..=10 {
        db.create("Messages", &msg(i, if i % 2 == 0 { "c2" } else { "c1" }, 100.0 + i as f64)).await.unwrap();
    }
    let req = |qt, filters: Value, data: Option<Value>| QueryRequest {
        query_type: qt,
        filters,
        data,
        ..QueryRequest::default()
    };
    let read = db.query("Messages", &req(QueryType::Get, json!({"id": created["id"]}), None)).await.unwrap();
    assert_eq!(
        read,
        QueryOutput::Rows(vec![std::sync::Arc::new(created.clone())].into()),
        "the created row reads back equal"
    );

    let n = db.query("Messages", &req(QueryType::Count, json!({"chat_id": "c1"}), None)).await.unwrap();
    assert_eq!(n, QueryOutput::Count(5));
    let n = db
        .query("Messages", &req(QueryType::Update, json!({"chat_id": "c1"}), Some(json!({"interest_value": 9.5}))))
        .await
        .unwrap();
    assert_eq!(n, QueryOutput::Count(5), "update returns the number of matching rows");
    // Same value again: still the number of matching rows (not of changed rows).
    let n = db.update("Messages", &json!({"chat_id": "c1"}), &json!({"interest_value": 9.5})).await.unwrap();
    assert_eq!(n, 5);
    assert_eq!(db.count("Messages", &json!({"interest_value": 9.5})).await.unwrap(), 5);
    let del = req(QueryType::Delete, json!({"chat_id": "c2", "time": {"$gt": 105.0}}), None);
    assert_eq!(db.query("Messages", &del).await.unwrap(), QueryOutput::Count(3));
    assert_eq!(db.count("Messages", &Value::Null).await.unwrap(), 7);
    // No filter: every row.
    assert_eq!(db.update("Messages", &json!({}), &json!({"memorized_times": 2})).await.unwrap(), 7);
    assert_eq!(db.delete("Messages", &Value::Null).await.unwrap(), 7);
    assert_eq!(db.count("Messages", &json!({})).await.unwrap(), 0);
}

async fn filters_and_order(t: &TestDb) {
    let db = &t.db;
    for i in 0..12 {
        db.create("Messages", &msg(i, "c", 100.0 + (i % 6) as f64)).await.unwrap();
    }
    let ids = |rows: botdb::Rows| rows.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    // The hot read: recent history, newest first, limited.
    let rows =
        db.find("Messages", &json!({"chat_id": "c", "time": {"$lt": 104.0}}), &["-time"], Some(3)).await.unwrap();
    assert_eq!(ids(rows), ["m3", "m9", "m2"], "ties on time break by id");
    let rows = db.find("Messages", &json!({"time": {"$gte": 104.0, "$lte": 104.0}}), &[], None).await.unwrap();
    assert_eq!(ids(rows), ["m4", "m10"]);
    let rows = db.find("Messages", &json!({"message_id": {"$in": ["m1", "m5", "zz"]}}), &["-id"], None).await.unwrap();
    assert_eq!(ids(rows), ["m5", "m1"]);
    assert_eq!(db.count("Messages", &json!({"message_id": {"$in": []}})).await.unwrap(), 0);
    assert_eq!(db.count("Messages", &json!({"message_id": {"$nin": []}})).await.unwrap(), 12);
    assert_eq!(db.count("Messages", &json!({"message_id": {"$nin": ["m1", "m2"]}})).await.unwrap(), 10);
    // NULL semantics: only null / $ne: null test NULL; comparisons never match NULL.
    assert_eq!(db.count("Messages", &json!({"interest_value": null})).await.unwrap(), 3);
    assert_eq!(db.count("Messages", &json!({"interest_value": {"$ne": null}})).await.unwrap(), 9);
    assert_eq!(db.count("Messages", &json!({"interest_value": {"$ne": 0.1}})).await.unwrap(), 8);
    assert_eq!(db.count("Messages", &json!({"interest_value": {"$nin": [0.1]}})).await.unwrap(), 8);
    // NULL sorts as the smallest value on every backend.
    let rows = db.find("Messages", &json!({}), &["interest_value"], Some(3)).await.unwrap();
    assert!(rows.iter().all(|r| r["interest_value"].is_null()));
    let rows = db.find("Messages", &json!({}), &["-interest_value"], None).await.unwrap();
    assert!(rows[11]["interest_value"].is_null() && !rows[0]["interest_value"].is_null());
    // Booleans and several orders.
    assert_eq!(db.count("Messages", &json!({"is_emoji": false})).await.unwrap(), 12);
    let rows = db.find("Messages", &json!({}), &["user_id", "-time"], Some(2)).await.unwrap();
    assert_eq!(ids(rows), ["m3", "m9"], "user u0 first, then its latest times");
    // single_result is a LIMIT 1 and answers a row or null.
    let one = db.get("Messages", &json!({"chat_id": "c"}), None, Some("-time"), true).await.unwrap();
    assert_eq!(one.into_json()["message_id"], json!("m5"));
    let none = db.get("Messages", &json!({"chat_id": "nope"}), None, None, true).await.unwrap();
    assert_eq!(none, QueryOutput::One(None));
    assert_eq!(db.find("Messages", &json!({}), &[], Some(0)).await.unwrap().len(), 12, "limit 0 = no limit");
}

async fn save_upserts_by_key(t: &TestDb) {
    let db = &t.db;
    let stream = json!({
        "stream_id": "s".repeat(64), "create_time": 1.0, "last_active_time": 2.0, "platform": "qq",
        "user_platform": "qq", "user_id": "10001", "user_nickname": "a"
    });
    let key = json!("s".repeat(64));
    let a = db.save("ChatStreams", &stream, Some(("stream_id", &key))).await.unwrap();
    assert_eq!(a["energy_value"], json!(5.0));
    // Partial data on an existing key: an update of just those fields.
    let b = db
        .save("ChatStreams", &json!({"last_active_time": 3.5, "message_count": 4}), Some(("stream_id", &key)))
        .await
        .unwrap();
    assert_eq!(b["id"], a["id"]);
    assert_eq!(b["last_active_time"], json!(3.5));
    assert_eq!(b["platform"], json!("qq"));
    let stored = db.find_one("ChatStreams", &json!({"stream_id": key}), &[]).await.unwrap().unwrap();
    assert_eq!(*stored, b, "the returned row is the stored row");
    // A missing key with partial data cannot create: typed error, nothing written.
    let other = json!("t".repeat(64));
    let e = db.save("ChatStreams", &json!({"last_active_time": 1.0}), Some(("stream_id", &other))).await.unwrap_err();
    assert!(matches!(e, botdb::Error::MissingRequired { .. }), "{e}");
    assert_eq!(db.count("ChatStreams", &json!({})).await.unwrap(), 1);
    // The key is not added to data implicitly.
    let mut s2 = stream.clone();
    s2["stream_id"] = json!("x");
    let c = db.save("ChatStreams", &s2, Some(("stream_id", &json!("y")))).await.unwrap();
    assert_eq!(c["stream_id"], json!("x"));
    // Non-unique key: the first match by id is updated.
    for i in 0..2 {
        db.create(
            "ActionRecords",
            &json!({"action_id": "dup", "time": i as f64, "action_name": "a", "action_data": "{}",
            "action_prompt_display": "", "chat_id": "c", "chat_info_stream_id": "c", "chat_info_platform": "qq"}),
        )
        .await
        .unwrap();
    }
    let u = db.save("ActionRecords", &json!({"action_name": "b"}), Some(("action_id", &json!("dup")))).await.unwrap();
    let first = db.find("ActionRecords", &json!({"action_id": "dup"}), &["id"], None).await.unwrap();
    assert_eq!(u["id"], first[0]["id"]);
    assert_eq!(first[0]["action_name"], json!("b"));
    assert_eq!(first[1]["action_name"], json!("a"));
}

async fn concurrent_saves_keep_one_row(t: &TestDb) {
    let mut tasks = vec![];
    for i in 0..16 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            let data = json!({"person_id": "p1", "platform": "qq", "user_id": "1", "know_times": i as f64});
            db.save("PersonInfo", &data, Some(("person_id", &json!("p1")))).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap_or_else(|e| panic!("save failed: {e}"));
    }
    assert_eq!(t.db.count("PersonInfo", &json!({"person_id": "p1"})).await.unwrap(), 1);
}
