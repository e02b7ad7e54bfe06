//! Every typed error path: raised before any SQL, nothing written or touched.

use botdb::Error;
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(validation_errors_touch_nothing, constraint_errors_are_typed);

async fn seed(t: &TestDb) {
    for i in 0..3 {
        t.db.create(
            "LLMUsage",
            &json!({"model_name": "m", "model_assign_name": "a", "model_api_provider": "p",
            "user_id": format!("u{i}"), "request_type": "chat", "endpoint": "/", "prompt_tokens": 1,
            "completion_tokens": 2, "total_tokens": 3, "cost": 0.5, "status": "ok"}),
        )
        .await
        .unwrap();
    }
}

async fn validation_errors_touch_nothing(t: &TestDb) {
    seed(t).await;
    let db = &t.db;
    let before = db.find("LLMUsage", &json!({}), &[], None).await.unwrap();
    // Update and delete with an unknown field: an error, and no row touched (the Python layer dropped the
    // condition and touched every row).
    let e = db.update("LLMUsage", &json!({"user_idd": "u1"}), &json!({"cost": 9.0})).await.unwrap_err();
    assert!(matches!(&e, Error::UnknownField { field, .. } if field == "user_idd"), "{e}");
    assert!(e.to_string().contains("user_id"), "the message lists the known fields: {e}");
    let e = db.delete("LLMUsage", &json!({"user_id": {"$regex": "u.*"}})).await.unwrap_err();
    assert!(matches!(e, Error::UnknownOperator { .. }), "{e}");
    let e = db.update("LLMUsage", &json!({"user_id": "u1"}), &json!({"costt": 1.0})).await.unwrap_err();
    assert!(matches!(e, Error::UnknownField { .. }), "{e}");
    let e = db.update("LLMUsage", &json!({"user_id": "u1"}), &json!({"cost": "cheap"})).await.unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
    let e = db.delete("LLMUsage", &json!({"prompt_tokens": "1"})).await.unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
    let e = db.delete("LLMUsage", &json!({"prompt_tokens": {"$in": 1}})).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    let e = db.delete("LLMUsage", &json!({"prompt_tokens": {"$gt": {"a": 1}}})).await.unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
    assert_eq!(db.find("LLMUsage", &json!({}), &[], None).await.unwrap(), before, "nothing changed");

    let e = db.create("LLMUsages", &json!({})).await.unwrap_err();
    assert!(matches!(e, Error::UnknownModel { .. }) && e.to_string().contains("LLMUsage"), "{e}");
    let e = db.create("LLMUsage", &json!({"model_name": "m"})).await.unwrap_err();
    assert!(
        matches!(&e, Error::MissingRequired { fields, .. } if fields.contains("endpoint") && !fields.contains("timestamp")),
        "{e}"
    );
    let e = db.create("LLMUsage", &json!({"nope": 1})).await.unwrap_err();
    assert!(matches!(e, Error::UnknownField { .. }), "{e}");
    let e = db.create("LLMUsage", &json!([1, 2])).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    let e = db.find("LLMUsage", &json!({}), &["-costt"], None).await.unwrap_err();
    assert!(matches!(e, Error::UnknownField { .. }), "{e}");
    let e = db.find("LLMUsage", &json!("user_id = 'u1'"), &[], None).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    // A field name is never SQL: an injection attempt is just an unknown field.
    let e = db.find("LLMUsage", &json!({"id = 1 OR 1": 1}), &[], None).await.unwrap_err();
    assert!(matches!(e, Error::UnknownField { .. }), "{e}");
    let e = db
        .query("LLMUsage", &botdb::QueryRequest { query_type: botdb::QueryType::Create, ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    assert!(e.is_validation());
    // A DATETIME only where every backend stores that very instant (MariaDB turned second 60 into a zero
    // date, PostgreSQL into the next minute): rejected before any SQL, naming the allowed range.
    for bad in ["2025-06-30 23:59:60", "0999-12-31 00:00:00"] {
        let e = db.update("LLMUsage", &json!({"user_id": "u1"}), &json!({"timestamp": bad})).await.unwrap_err();
        assert!(matches!(&e, Error::InvalidValue { field, .. } if field == "timestamp"), "{e}");
        assert!(e.to_string().contains("1000–9999"), "{e}");
    }
    // A NUL character: PostgreSQL refused it after the SQL, SQLite and MariaDB stored it; now refused first.
    let e = db.update("LLMUsage", &json!({"user_id": "u1"}), &json!({"status": "a\u{0}b"})).await.unwrap_err();
    assert!(
        matches!(&e, Error::InvalidValue { field, .. } if field == "status") && e.to_string().contains("NUL"),
        "{e}"
    );
    let e = db.find("LLMUsage", &json!({"user_id": "u\u{0}1"}), &[], None).await.unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
    assert_eq!(db.find("LLMUsage", &json!({}), &[], None).await.unwrap(), before, "nothing changed");
    assert_eq!(db.count("LLMUsage", &Value::Null).await.unwrap(), 3);
    // Text MySQL's TEXT cannot hold (65,535 bytes) is refused there before any SQL, with the limit named;
    // SQLite and PostgreSQL store it.
    let long = "字".repeat(22_000); // 66,000 bytes
    let (filter, data) = (json!({"user_id": "u1"}), json!({"endpoint": long}));
    let u = db.update("LLMUsage", &filter, &data);
    if t.backend == crate::helpers::Backend::Mysql {
        let e = u.await.unwrap_err();
        assert!(matches!(e, Error::InvalidValue { .. }) && e.to_string().contains("65535 bytes"), "{e}");
        assert_eq!(db.find("LLMUsage", &json!({}), &[], None).await.unwrap(), before, "nothing changed");
    } else {
        assert!(u.await.unwrap() > 0);
    }
}

async fn constraint_errors_are_typed(t: &TestDb) {
    let db = &t.db;
    let node = json!({"node_name": "plugin.x", "description": "d", "plugin_name": "p"});
    db.create("PermissionNodes", &node).await.unwrap();
    let e = db.create("PermissionNodes", &node).await.unwrap_err();
    assert!(matches!(e, Error::Constraint { .. }), "a duplicate unique key is a constraint error: {e}");
    assert!(!e.to_string().contains("plugin.x"), "no row value in the error: {e}");
    assert_eq!(db.count("PermissionNodes", &json!({})).await.unwrap(), 1);
    let e = db
        .create("PermissionNodes", &json!({"node_name": "x".repeat(256), "description": "d", "plugin_name": "p"}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidValue { .. }), "over VARCHAR(255) on every backend: {e}");
}
