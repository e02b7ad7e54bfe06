//! `botdb-admin` end to end: JSON on stdout, one-line errors on stderr, exit codes.

use std::process::{Command, Output};

use serde_json::{Value, json};

fn admin(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("BOTDB_CONFIG_DIR")
        .output()
        .expect("run botdb-admin")
}

fn ok_json(url: &str, args: &[&str]) -> Value {
    let out = admin(url, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/admin.sqlite?mode=rwc", dir.path().display());
    assert_eq!(
        ok_json(&url, &["migrate", "status"]),
        json!([
            {"name": "m20261123_000001_create_tables", "applied": false},
            {"name": "m20261202_000001_create_cache_fence", "applied": false},
            {"name": "m20261204_000001_add_missing_columns", "applied": false}
        ])
    );
    let out = admin(&url, &["check"]);
    assert_eq!(out.status.code(), Some(2), "pending migrations fail the check");
    ok_json(&url, &["migrate", "up"]);
    assert_eq!(ok_json(&url, &["check"])["pending_migrations"], json!([]));
    assert_eq!(ok_json(&url, &["models"]).as_array().unwrap().len(), 25);

    let data = r#"{"person_id":"p1","platform":"qq","user_id":"42"}"#;
    let row =
        ok_json(&url, &["save", "PersonInfo", "--data", data, "--key-field", "person_id", "--key-value", "\"p1\""]);
    assert_eq!(row["attitude"], json!(50));
    let row2 = ok_json(
        &url,
        &["save", "PersonInfo", "--data", r#"{"nickname":"n"}"#, "--key-field", "person_id", "--key-value", "\"p1\""],
    );
    assert_eq!((row2["id"].clone(), row2["nickname"].clone()), (row["id"].clone(), json!("n")));
    let rows =
        ok_json(&url, &["query", "PersonInfo", "--filter", r#"{"user_id":{"$in":["42"]}}"#, "--order-by", "-id"]);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--type", "count"]), json!(1));
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--single", "--filter", r#"{"user_id":"0"}"#]), Value::Null);
    let action = ok_json(
        &url,
        &[
            "store-action",
            "--name",
            "reply",
            "--chat-stream",
            r#"{"stream_id":"s","platform":"qq"}"#,
            "--done",
            "false",
        ],
    );
    assert_eq!((action["chat_id"].clone(), action["action_done"].clone()), (json!("s"), json!(false)));
    // Prune: needs --yes; --dry-run counts; the seeded person has no time column to prune by.
    let out = admin(&url, &["prune", "Messages", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("would delete 0 row(s)"));
    assert_eq!(ok_json(&url, &["prune", "Messages", "--older-than", "30d", "--dry-run"])["would_delete"], json!(0));
    assert_eq!(ok_json(&url, &["prune", "ActionRecords", "--older-than", "1h", "--yes"])["deleted"], json!(0));
    assert_eq!(admin(&url, &["prune", "Messages", "--older-than", "30 days"]).status.code(), Some(1));
    assert_eq!(ok_json(&url, &["vacuum"]), json!({"vacuumed": 25}));
    assert!(ok_json(&url, &["checkpoint"])["log_frames"].is_i64());
    assert_eq!(ok_json(&url, &["analyze"]), json!({"analyzed": 25}));
    let stats = ok_json(&url, &["stats"]);
    let person = stats.as_array().unwrap().iter().find(|s| s["model"] == "PersonInfo").unwrap();
    assert_eq!(person["rows"], json!(1));

    let out = admin(&url, &["query", "PersonInfo", "--filter", r#"{"user_idd":"0"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown field `user_idd`"), "{err}");
    assert!(admin(&url, &["query", "PersonInfo", "--filter", "{oops"]).status.code() == Some(1));
    // A key named twice is refused (plain JSON parsing keeps the last one and drops the other silently).
    let out =
        admin(&url, &["query", "PersonInfo", "--type", "delete", "--filter", r#"{"user_id":"42","user_id":"0"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("appears twice"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--type", "count"]), json!(1), "nothing deleted");
    // Options that do not apply to the query type are refused, and nothing is touched.
    for args in [
        &["query", "PersonInfo", "--type", "delete", "--limit", "1"][..],
        &["query", "PersonInfo", "--type", "update", "--single", "--data", r#"{"nickname":"x"}"#],
        &["query", "PersonInfo", "--type", "create", "--filter", r#"{"user_id":"42"}"#, "--data", data],
        &["query", "PersonInfo", "--type", "count", "--order-by", "-id"],
        &["query", "PersonInfo", "--type", "get", "--all"],
    ] {
        let out = admin(&url, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(err.contains("does not apply"), "{err}");
    }
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--type", "count"]), json!(1));
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--single"])["nickname"], json!("n"), "untouched");
    // An update or delete without a filter needs --all.
    for t in ["update", "delete"] {
        let mut args = vec!["query", "PersonInfo", "--type", t];
        if t == "update" {
            args.extend(["--data", r#"{"nickname":"all"}"#]);
        }
        let out = admin(&url, &args);
        assert_eq!(out.status.code(), Some(1), "{t} without --filter");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--all"), "{t}");
    }
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--single"])["nickname"], json!("n"), "untouched");
    assert_eq!(
        ok_json(&url, &["query", "PersonInfo", "--type", "update", "--all", "--data", r#"{"nickname":"all"}"#]),
        json!(1)
    );
    // Destructive migrations need --yes, name the target and what goes; --dry-run changes nothing.
    for args in [&["migrate", "fresh"][..], &["migrate", "down", "-n", "3"]] {
        let out = admin(&url, args);
        assert_eq!(out.status.code(), Some(1), "{args:?} needs --yes");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--yes") && err.contains("admin.sqlite") && err.contains("25 table(s)"), "{err}");
    }
    let plan = ok_json(&url, &["migrate", "down", "-n", "3", "--dry-run"]);
    assert_eq!(
        plan["revert"],
        json!([
            "m20261204_000001_add_missing_columns",
            "m20261202_000001_create_cache_fence",
            "m20261123_000001_create_tables"
        ])
    );
    let person = plan["drops"].as_array().unwrap().iter().find(|t| t["table"] == "person_info").unwrap().clone();
    assert_eq!(person["rows"], json!(1));
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--type", "count"]), json!(1), "and nothing was dropped");
    ok_json(&url, &["migrate", "fresh", "--yes"]);
    assert_eq!(ok_json(&url, &["query", "PersonInfo", "--type", "count"]), json!(0));
    ok_json(&url, &["migrate", "down", "--yes"]);
    ok_json(&url, &["migrate", "down", "--yes"]);
    assert_eq!(admin(&url, &["check"]).status.code(), Some(2));
    let health = ok_json(&url, &["health"]);
    assert_eq!((health["status"].clone(), health["database"].clone()), (json!("ok"), json!("up")));
    let cache = ok_json(&url, &["cache", "stats"]);
    assert_eq!(cache["redis"], json!("absent"));
    assert_eq!(cache["processes"], json!([]));
    let out = admin(&url, &["cache", "flush"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only this process"));
    let forgot = ok_json(&url, &["cache", "flush", "--model", "Messages,ActionRecords", "--partition", "c1"]);
    assert_eq!(
        (forgot["forgot"].clone(), forgot["partition"].clone()),
        (json!(["Messages", "ActionRecords"]), json!("c1"))
    );
    fails_with(&url, &["cache", "flush", "--model", "Nope"], 1, "unknown model");
    assert_eq!(ok_json(&url, &["check", "--schema"])["schema_differences"], json!([]));
    // --format: a list as JSON lines (each a whole value), or as a table.
    let out = admin(&url, &["--format", "jsonl", "models"]);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 25);
    assert!(lines.iter().any(|m| m["model"] == "LLMUsage"), "{lines:?}");
    let table = String::from_utf8_lossy(&admin(&url, &["--format", "table", "migrate", "status"]).stdout).to_string();
    assert!(
        table.contains("m20261123_000001_create_tables") && table.contains("applied") && table.contains('│'),
        "{table}"
    );
    let none = String::from_utf8_lossy(
        &admin(&url, &["--format", "table", "query", "PersonInfo", "--filter", r#"{"person_id": "nobody"}"#]).stdout,
    )
    .to_string();
    assert_eq!(none.trim(), "(no rows)");
    assert!(admin(&url, &["--format", "csv", "models"]).status.code() == Some(2), "an unknown format is a usage error");
    assert_eq!(
        ok_json(&url, &["aggregate", "Messages", "count", "id", "--filter", r#"{"chat_id": {"$like": "%"}}"#]),
        json!(0)
    );
    assert_eq!(ok_json(&url, &["distinct", "Messages", "chat_id"]), json!([]));
    fails_with(&url, &["aggregate", "Messages", "sum", "chat_id"], 1, "does not apply");
    fails_with(&url, &["cache", "flush", "--model", "OnlineTime", "--chat", "c1"], 1, "no partition column");
    fails_with(&url, &["cache", "flush", "--partition", "c1"], 2, "--model");
    // Read-only commands never create a database: a mistyped path is an error (health: JSON, exit 4).
    let typo = format!("sqlite://{}/typo/nothing.sqlite?mode=rwc", dir.path().display());
    for args in [
        &["stats"][..],
        &["check"],
        &["query", "PersonInfo"],
        &["query", "PersonInfo", "--type", "count"],
        &["cache", "stats"],
    ] {
        let out = admin(&typo, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"), "{args:?}");
    }
    let out = admin(&typo, &["health"]);
    assert_eq!(out.status.code(), Some(4));
    let down: Value = serde_json::from_slice(&out.stdout).expect("health prints JSON when down");
    assert_eq!(down["status"], json!("down"));
    assert!(!dir.path().join("typo").exists(), "nothing was created");
    // A closed pipe (`stats | true`) ends the output quietly, not in a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", &url, "models"])
        .env_remove("BOTDB_CONFIG_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Degraded (Redis unreachable): exit 3, still JSON.
    let out = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", &url, "health"])
        .env_remove("BOTDB_CONFIG_DIR")
        .env("BOTDB__CACHE__REDIS__URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let degraded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((degraded["status"].clone(), degraded["database"].clone()), (json!("degraded"), json!("up")));
    // Nor do they migrate: `stats` on a database whose migrations are pending leaves them pending.
    let fresh = format!("sqlite://{}/pending.sqlite?mode=rwc", dir.path().display());
    ok_json(&fresh, &["migrate", "status"]);
    admin(&fresh, &["stats"]);
    let status = ok_json(&fresh, &["migrate", "status"]);
    assert!(status.as_array().unwrap().iter().all(|m| m["applied"] == json!(false)), "{status}");
    let bad = admin("ftp://nowhere", &["stats"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

#[test]
fn passwords_never_reach_stderr() {
    let out = admin("postgres://bot:hunter2@127.0.0.1:1/none", &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("hunter2") && err.contains("***"), "{err}");
    // At every log level, in text and JSON logs, on both server backends (sea-orm's connect span prints
    // its options; the password is not among them). The servers are unreachable: the span comes first.
    for url in ["postgres://bot:canary%2Dpw@127.0.0.1:1/none", "mysql://bot:canary%2Dpw@127.0.0.1:1/none"] {
        for json in ["0", "1"] {
            let out = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
                .args(["--database-url", url, "stats"])
                .env("RUST_LOG", "trace")
                .env("BOTDB_LOG_JSON", json)
                .env_remove("BOTDB_CONFIG_DIR")
                .output()
                .expect("run botdb-admin");
            let err = String::from_utf8_lossy(&out.stderr);
            // (PostgreSQL's driver logs inside the span, so the span and its URL are printed; MySQL's
            // logs nothing before the unreachable server fails, so there this only checks the rest.)
            if url.starts_with("postgres") {
                assert!(err.contains("ConnectOptions"), "the connect span, with its URL, was logged: {err}");
            }
            assert!(!err.contains("canary"), "{url} (json {json}): {err}");
        }
    }
}

fn fails_with(url: &str, args: &[&str], code: i32, says: &str) {
    let out = admin(url, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

fn seed_people(url: &str, n: usize) {
    for i in 0..n {
        let data = json!({"person_id": format!("p{i}"), "platform": "qq", "user_id": format!("{i}"),
            "nickname": if i % 2 == 0 { json!("名字😀") } else { Value::Null }});
        ok_json(url, &["save", "PersonInfo", "--data", &data.to_string()]);
    }
}

/// backup → restore (guarded) → equal; a changed backup refused; export → import (twice) → equal; copy
/// SQLite → SQLite (and → PostgreSQL when its URL is set) → verified.
#[test]
fn backup_restore_export_import_copy() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let url = format!("sqlite://{}?mode=rwc", at("bot.sqlite"));
    ok_json(&url, &["migrate", "up"]);
    seed_people(&url, 5);

    let b = ok_json(&url, &["backup", &at("b.sqlite")]);
    assert_eq!(b["rows"], json!(5), "{b}");
    fails_with(&url, &["backup", &at("b.sqlite")], 1, "exists already");
    // Read-only verbs never create the restore target; without --yes nothing happens.
    let target = format!("sqlite://{}?mode=rwc", at("restored.sqlite"));
    fails_with(&target, &["restore", &at("b.sqlite")], 1, "no database at");
    ok_json(&target, &["migrate", "up"]);
    seed_people(&target, 2);
    fails_with(&target, &["restore", &at("b.sqlite")], 1, "deletes 2 row(s) in 1 table(s) and restores 5 row(s)");
    let plan = ok_json(&target, &["restore", &at("b.sqlite"), "--dry-run"]);
    assert_eq!(plan["deletes"], json!([{"table": "person_info", "rows": 2}]));
    assert_eq!(ok_json(&target, &["query", "PersonInfo", "--type", "count"]), json!(2), "a dry run changes nothing");
    let done = ok_json(&target, &["restore", &at("b.sqlite"), "--yes"]);
    assert_eq!((done["verified"].clone(), done["deleted"].clone()), (json!(true), json!(2)));
    let people = |u: &str| ok_json(u, &["query", "PersonInfo", "--order-by", "id"]);
    assert_eq!(people(&target), people(&url));
    // A backup that no longer matches its manifest is refused.
    let backup_url = format!("sqlite://{}?mode=rw", at("b.sqlite"));
    ok_json(&backup_url, &["query", "PersonInfo", "--type", "delete", "--filter", r#"{"person_id":"p0"}"#]);
    fails_with(&target, &["restore", &at("b.sqlite"), "--yes"], 1, "does not match its manifest (tables PersonInfo)");

    // export → import → equal, twice.
    let exported = ok_json(&url, &["export", &at("dump"), "--tables", "PersonInfo,ChatStreams"]);
    assert_eq!(exported["exported"][0], json!({"model": "PersonInfo", "read": 5, "written": 5}));
    let fresh = format!("sqlite://{}?mode=rwc", at("imported.sqlite"));
    let imported = ok_json(&fresh, &["import", &at("dump")]);
    let people_written = |v: &Value| {
        v["imported"].as_array().unwrap().iter().find(|t| t["model"] == "PersonInfo").unwrap()["written"].clone()
    };
    assert_eq!(people_written(&imported), json!(5));
    assert_eq!(people_written(&ok_json(&fresh, &["import", &at("dump")])), json!(0), "importing twice adds nothing");
    assert_eq!(people(&fresh), people(&url));

    // copy
    let copy_to = format!("sqlite://{}?mode=rwc", at("copy.sqlite"));
    fails_with(&url, &["copy", "--from", &url, "--to", &copy_to], 1, "remove --database-url");
    let copy = |to: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
            .args(["copy", "--from", &url, "--to", to])
            .env_remove("BOTDB_CONFIG_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let copied = copy(&copy_to);
    assert_eq!(copied["verified"], json!(true));
    assert_eq!(people(&copy_to), people(&url));
    assert_eq!(
        copy(&copy_to)["copied"].as_array().unwrap().iter().map(|t| t["written"].as_u64().unwrap()).sum::<u64>(),
        0
    );
    if let Ok(server) = std::env::var("BOTDB_TEST_POSTGRES_URL") {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (settings, drop, _) =
            rt.block_on(crate::helpers::fresh_settings(crate::helpers::Backend::Postgres)).unwrap();
        let pg = settings.database.url.expose().to_owned();
        assert_eq!(copy(&pg)["verified"], json!(true));
        assert_eq!(people(&pg), people(&url));
        let (_, name) = drop.unwrap();
        rt.block_on(async {
            use botdb::sea_orm::ConnectionTrait;
            let admin = botdb::sea_orm::Database::connect(&server).await.unwrap();
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        });
    }
}

/// `config show`: environment overrides per model (in the model's own spelling), an empty Redis URL meaning
/// none, secrets redacted; a profile without a config directory and a directory without `default.toml` are
/// refused.
#[test]
fn config_show_and_precise_config_errors() {
    let run = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_botdb-admin"));
        c.env_remove("BOTDB_CONFIG_DIR").env_remove("BOTDB_PROFILE").args(extra).args(["config", "show"]);
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = run(
        &[("BOTDB__CACHE__MODELS__LLMUsage__TTL_MS", "1234"), ("BOTDB__CACHE__REDIS__URL", "")],
        &["--database-url", "postgres://bot:s3cret@127.0.0.1/bot"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cache"]["models"]["LLMUsage"]["ttl_ms"], json!(1234));
    assert_eq!(v["cache"]["redis"]["url"], Value::Null);
    assert_eq!(v["database"]["url"], json!("postgres://bot:***@127.0.0.1/bot"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));

    let out = run(&[("BOTDB_PROFILE", "prod")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no config directory"));
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[], &["--config", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no default.toml"));
    // An override for a model that does not exist is refused when a database is opened.
    let url = format!("sqlite://{}/x.sqlite?mode=rwc", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .env_remove("BOTDB_CONFIG_DIR")
        .env("BOTDB__CACHE__MODELS__NoSuchModel__TTL_MS", "1")
        .args(["--database-url", &url, "migrate", "up"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchModel"), "{}", String::from_utf8_lossy(&out.stderr));
}
