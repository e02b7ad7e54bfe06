//! The compatibility facade: return shapes of `db_query`, `db_save`, `db_get`, `store_action_info`, and
//! `MODEL_MAPPING`.

use botdb::{ActionInfo, Compat, Error, MODEL_MAPPING};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb, backend_tests};

backend_tests!(db_query_shapes, store_action_info_derives_fields);

fn usage(user: &str) -> Value {
    json!({"model_name": "m", "model_assign_name": "a", "model_api_provider": "p", "user_id": user,
        "request_type": "chat", "endpoint": "/", "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
        "cost": 0.5, "status": "ok"})
}

async fn db_query_shapes(t: &TestDb) {
    let c = Compat(t.db.clone());
    let created = c.db_query("LLMUsage", "create", None, Some(&usage("u1")), None, None, false).await.unwrap();
    assert!(created["id"].is_number() && created["timestamp"].is_string());
    c.db_query("LLMUsage", "create", None, Some(&usage("u2")), None, None, false).await.unwrap();
    let all = c.db_query("LLMUsage", "get", None, None, None, Some(&["-id".into()]), false).await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["user_id"], json!("u2"));
    let one = c.db_query("LLMUsage", "get", Some(&json!({"user_id": "u1"})), None, None, None, true).await.unwrap();
    assert_eq!(one, created);
    let none = c.db_query("LLMUsage", "get", Some(&json!({"user_id": "x"})), None, None, None, true).await.unwrap();
    assert_eq!(none, Value::Null);
    let empty = c.db_query("LLMUsage", "get", Some(&json!({"user_id": "x"})), None, None, None, false).await.unwrap();
    assert_eq!(empty, json!([]));
    let (f, d) = (json!({"user_id": "u1"}), json!({"cost": 2.0}));
    let n = c.db_query("LLMUsage", "update", Some(&f), Some(&d), None, None, false).await.unwrap();
    assert_eq!(n, json!(1));
    assert_eq!(c.db_query("LLMUsage", "count", None, None, None, None, false).await.unwrap(), json!(2));
    let limited = c.db_get("LLMUsage", None, Some(1), Some("-cost"), false).await.unwrap();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(limited[0]["user_id"], json!("u1"));
    assert_eq!(
        c.db_query("LLMUsage", "delete", Some(&json!({"user_id": "u2"})), None, None, None, false).await.unwrap(),
        json!(1)
    );
    // db_save: create, then update by key.
    let saved = c.db_save("LLMUsage", &usage("u9"), Some("user_id"), Some(&json!("u9"))).await.unwrap();
    let again =
        c.db_save("LLMUsage", &json!({"status": "retried"}), Some("user_id"), Some(&json!("u9"))).await.unwrap();
    assert_eq!(again["id"], saved["id"]);
    assert_eq!(again["status"], json!("retried"));
    // Errors, never a silent None.
    let e = c.db_query("LLMUsage", "upsert", None, None, None, None, false).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    let e = c.db_query("LLMUsage", "get", None, None, Some(-1), None, false).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    let e = c.db_save("LLMUsage", &usage("x"), Some("user_id"), None).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
}

async fn store_action_info_derives_fields(t: &TestDb) {
    let c = Compat(t.db.clone());
    let row = c
        .store_action_info(&ActionInfo {
            chat_stream: Some(json!({"stream_id": "s1", "platform": "qq", "extra": 1})),
            action_data: json!({"text": "你好", "n": 1}),
            action_name: "reply".into(),
            ..ActionInfo::default()
        })
        .await
        .unwrap();
    let id = row["action_id"].as_str().unwrap();
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert_eq!(row["action_data"], json!(r#"{"text":"你好","n":1}"#));
    assert_eq!(row["chat_id"], json!("s1"));
    assert_eq!(row["chat_info_stream_id"], json!("s1"));
    assert_eq!(row["chat_info_platform"], json!("qq"));
    assert_eq!(row["action_done"], json!(true));
    assert_eq!(row["action_build_into_prompt"], json!(false));
    assert_eq!(row["action_prompt_display"], json!(""));
    assert!((row["time"].as_f64().unwrap() - botdb::testing::time::now_epoch()).abs() < 60.0);
    // Defaults, no chat stream; two calls back to back get two rows.
    let a = c.store_action_info(&ActionInfo::default()).await.unwrap();
    let b = c.store_action_info(&ActionInfo::default()).await.unwrap();
    assert_ne!(a["action_id"], b["action_id"]);
    assert_eq!(a["chat_id"], json!(""));
    assert_eq!(a["action_data"], json!("{}"));
    // With a thinking id it is an upsert on action_id.
    let info = ActionInfo { thinking_id: "think-1".into(), action_name: "first".into(), ..ActionInfo::default() };
    c.store_action_info(&info).await.unwrap();
    let info = ActionInfo { thinking_id: "think-1".into(), action_name: "second".into(), ..ActionInfo::default() };
    let row = c.store_action_info(&info).await.unwrap();
    assert_eq!(row["action_name"], json!("second"));
    assert_eq!(t.db.count("ActionRecords", &json!({"action_id": "think-1"})).await.unwrap(), 1);
    assert_eq!(t.db.count("ActionRecords", &json!({})).await.unwrap(), 4);
    let e = c
        .store_action_info(&ActionInfo { chat_stream: Some(json!({"platform": "qq"})), ..ActionInfo::default() })
        .await;
    assert!(matches!(e, Err(Error::InvalidRequest(_))));
}

/// The free functions over the installed handle (one test owns the process-wide handle).
#[tokio::test]
async fn free_functions_use_the_installed_handle() {
    let e = botdb::compat::db_get("LLMUsage", None, None, None, false).await;
    assert!(matches!(e, Err(Error::NotInstalled)) || botdb::compat::uninstall().is_some());
    let t = crate::helpers::open(Backend::Sqlite).await.unwrap();
    botdb::compat::install(t.db.clone());
    assert_eq!(MODEL_MAPPING.len(), 25);
    assert_eq!(MODEL_MAPPING["Messages"].table, "messages");
    let row = botdb::compat::db_query("LLMUsage", "create", None, Some(&usage("f")), None, None, false).await.unwrap();
    let got = botdb::compat::db_get("LLMUsage", Some(&json!({"id": row["id"]})), None, None, true).await.unwrap();
    assert_eq!(got, row);
    let saved = botdb::compat::db_save("LLMUsage", &json!({"cost": 1.5}), Some("id"), Some(&row["id"])).await.unwrap();
    assert_eq!(saved["cost"], json!(1.5));
    botdb::compat::store_action_info(&ActionInfo::default()).await.unwrap();
    assert!(botdb::compat::uninstall().is_some());
    assert!(matches!(botdb::compat::db_get("LLMUsage", None, None, None, false).await, Err(Error::NotInstalled)));
    t.close().await;
}
