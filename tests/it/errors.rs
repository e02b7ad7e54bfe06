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

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` (a filler file written until ENOSPC).
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

/// SQLite on a full disk (a 32 MiB tmpfs filled by a filler file; needs root to mount it, skipped
/// otherwise): writes that fail are reported as errors, and once space is back every write acknowledged
/// before, during and after is in the database, read by a fresh handle. Before the fix a COMMIT that failed
/// for want of space left the driver counting a transaction SQLite had ended as open, every later write ran
/// inside a transaction that was never committed, and all of them were acknowledged and lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_a_full_disk_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: mounting a tmpfs needs root");
        return;
    }
    let _mounted = Mounted(dir.path().to_owned());
    let url = format!("sqlite://{}/full.sqlite?mode=rwc", dir.path().display());
    let mut s = botdb::Settings::for_url(&url);
    s.preload.enabled = false;
    let db = botdb::Db::open(s.clone()).await.unwrap();
    let big = "x".repeat(3000);
    let msg = |id: String| {
        json!({"message_id": id, "time": 1.0, "chat_id": "c", "chat_info_stream_id": "c",
            "chat_info_platform": "qq", "chat_info_user_platform": "qq", "chat_info_user_id": "u",
            "chat_info_user_nickname": "n", "chat_info_create_time": 0.0, "chat_info_last_active_time": 0.0,
            "processed_plain_text": big})
    };
    let mut acked: Vec<String> = Vec::new();
    for i in 0..5 {
        db.create("Messages", &msg(format!("before-{i}"))).await.unwrap();
        acked.push(format!("before-{i}"));
    }
    let filler = fill(dir.path());
    // Pipelined writes through a session and awaited ones, while the disk is full.
    let session = db.session();
    let mut failed = 0;
    for round in 0..30 {
        let mut tickets = Vec::new();
        for i in 0..4 {
            let id = format!("full-{round}-{i}");
            tickets.push((id.clone(), session.submit_create("Messages", &msg(id)).await.unwrap()));
        }
        for (id, t) in tickets {
            match t.await {
                Ok(_) => acked.push(id),
                Err(e) => {
                    assert!(matches!(e, Error::Database { .. } | Error::Indeterminate(_)), "{e}");
                    failed += 1;
                }
            }
        }
        let id = format!("full-{round}-awaited");
        match db.create("Messages", &msg(id.clone())).await {
            Ok(_) => acked.push(id),
            Err(e) => {
                assert!(matches!(e, Error::Database { .. } | Error::Indeterminate(_)), "{e}");
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "the database refused writes while the disk was full");
    std::fs::remove_file(filler).unwrap();
    for i in 0..10 {
        let id = format!("after-{i}");
        session.submit_create("Messages", &msg(id.clone())).await.unwrap().await.unwrap();
        acked.push(id.clone());
        db.create("Messages", &msg(format!("{id}-awaited"))).await.unwrap();
        acked.push(format!("{id}-awaited"));
    }
    db.shutdown().await;
    let fresh = botdb::Db::open(s).await.unwrap();
    for id in &acked {
        let row = fresh.find_one("Messages", &json!({"message_id": id}), &[]).await.unwrap();
        assert!(row.is_some(), "acknowledged write {id} was lost ({} acknowledged, {failed} refused)", acked.len());
    }
    fresh.shutdown().await;
}
