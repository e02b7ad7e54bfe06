//! The load harness end to end: a short smoke run on a tiny dataset produces a valid JSON report with both
//! systems and the ceiling, zero lost writes and zero errors.

use std::process::Command;

#[test]
fn smoke_run_reports_both_systems_and_the_ceiling_with_no_lost_writes() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report/loadtest.json");
    let out = Command::new(env!("CARGO_BIN_EXE_botdb-loadtest"))
        .args(["--duration", "1", "--warmup", "0.2", "--chats", "5", "--users", "60", "--messages-per-chat", "10"])
        .args(["--concurrency", "8", "--max-error-rate", "0"])
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .expect("run botdb-loadtest");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["backend"], "sqlite");
    for system in ["baseline", "botdb"] {
        let s = &report["systems"][system];
        assert!(s["messages_per_s"].as_f64().unwrap() > 0.0, "{system}: {s}");
        assert_eq!(s["errors"], 0, "{system}");
        assert_eq!(s["lost_writes"], 0, "{system}");
        assert_eq!(s["integrity_ok"], true, "{system}");
        assert!(s["acked_writes"].as_u64().unwrap() > 0);
        assert_eq!(s["rows_verified"], s["acked_writes"], "{system}: every acknowledged insert is in the database");
        for key in ["read_latency_us", "write_ack_latency_us"] {
            assert!(s[key]["p99"].as_f64().unwrap() > 0.0, "{system} {key}");
        }
        assert!(s["ops"]["insert_message"]["count"].as_u64().unwrap() > 0);
    }
    // The ceiling replayed as many messages' writes as botdb handled, and every row they inserted is there.
    let c = &report["systems"]["ceiling"];
    assert!(c["row_writes_per_s"].as_f64().unwrap() > 0.0, "{c}");
    assert_eq!((c["errors"].as_u64(), c["lost_writes"].as_u64()), (Some(0), Some(0)), "{c}");
    assert!(c["inserted"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["rows_verified"], c["inserted"], "{c}");
    assert!(
        c["writes"].as_u64().unwrap() >= c["messages"].as_u64().unwrap() * 3,
        "a message writes 3 rows or more: {c}"
    );
    assert!(report["botdb_vs_ceiling_row_writes"].as_f64().unwrap() > 0.0);
    assert!(report["systems"]["botdb"]["batched_write_ratio"].is_number());
    assert!(report["systems"]["botdb"]["cache_hit_ratio"].is_number());
    assert!(report["systems"]["baseline"]["cache_hit_ratio"].is_null());
    // The plots are named after the report, and what they draw is in it.
    for svg in ["loadtest-read-latency.svg", "loadtest-write-ack-latency.svg", "loadtest-throughput.svg"] {
        let text = std::fs::read_to_string(dir.path().join("report").join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
    }
    let series = &report["systems"]["botdb"]["series"];
    let curve = series["write_ack_latency_us"].as_array().unwrap();
    assert_eq!(curve.first().unwrap()[0], 0.0);
    assert_eq!(curve.last().unwrap()[0], 99.99);
    assert!(!series["messages_per_second"].as_array().unwrap().is_empty());
    // The run header, and the threshold with its value and limit.
    let run = &report["run"];
    assert_eq!(run["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(run["arguments"]["chats"], 5);
    assert_eq!(run["durability"]["journal_mode"], "wal");
    assert_eq!(report["thresholds"][0]["name"], "error_rate");
    assert_eq!(
        (report["thresholds"][0]["limit"].clone(), report["thresholds"][0]["pass"].clone()),
        (0.0.into(), true.into())
    );
    assert!(report["systems"]["botdb"]["read_latency_us"]["p90"].as_f64().unwrap() > 0.0);
    assert!(report["systems"]["botdb"]["read_latency_us"]["mean"].as_f64().unwrap() > 0.0);
}

/// A threshold that is not met fails the run (exit 3) and says the value and the limit.
#[test]
fn a_missed_threshold_names_its_value_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_botdb-loadtest"))
        .args(["--duration", "0.5", "--warmup", "0", "--chats", "3", "--users", "20", "--messages-per-chat", "5"])
        .args(["--compare", "false", "--ceiling", "false", "--min-messages-per-s", "1e12"])
        .arg("--json")
        .arg(dir.path().join("t.json"))
        .output()
        .expect("run botdb-loadtest");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("messages_per_s") && err.contains("(limit 1000000000000.0)"), "{err}");
}

/// `botdb-admin verify` against the database and its acknowledgement log; answers (exit code, report).
fn verify(url: &str, log: &std::path::Path) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", url, "verify", "--ack-log"])
        .arg(log)
        .env_remove("BOTDB_CONFIG_DIR")
        .output()
        .expect("run botdb-admin verify");
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

fn admin_ok(url: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", url])
        .args(args)
        .env_remove("BOTDB_CONFIG_DIR")
        .output()
        .expect("run botdb-admin");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The crash harness's two halves: the load harness records every write botdb acknowledged (`--ack-log`,
/// pipelined and awaited), `botdb-admin verify` finds all of them in the database; and it notices a lost
/// row, a changed value, a duplicated row and a torn last line. (`scripts/crash-matrix.sh` kills the
/// harness at random points in between; CI runs it in release.)
#[test]
fn the_ack_log_verifies_and_catches_lost_wrong_and_duplicated_writes() {
    for pipeline in ["true", "false"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("acks.jsonl");
        let out = Command::new(env!("CARGO_BIN_EXE_botdb-loadtest"))
            .args(["--duration", "1", "--warmup", "0", "--chats", "4", "--users", "40", "--messages-per-chat", "5"])
            .args(["--compare", "false", "--ceiling", "false", "--concurrency", "8", "--pipeline", pipeline])
            .arg("--ack-log")
            .arg(&log)
            .arg("--json")
            .arg(dir.path().join("r.json"))
            .arg("--work-dir")
            .arg(dir.path())
            .output()
            .expect("run botdb-loadtest");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let url = format!("sqlite://{}", dir.path().join("botdb.sqlite").display());
        let (code, v) = verify(&url, &log);
        assert_eq!(code, Some(0), "pipeline {pipeline}: {v}");
        assert!(v["checks"].as_u64().unwrap() > 10, "{v}");
        assert_eq!(v["verified"], v["checks"], "{v}");
        assert_eq!((v["lost"].as_u64(), v["integrity_ok"].as_bool()), (Some(0), Some(true)), "{v}");

        // Every kind of check is in the log: a created row by id with its content, an update, a counter.
        let text = std::fs::read_to_string(&log).unwrap();
        let checks: Vec<serde_json::Value> = text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
        let created = checks
            .iter()
            .find(|c| c["model"] == "Messages" && c["any_of"]["processed_plain_text"].is_array())
            .expect("a message insert");
        let counter = checks.iter().find(|c| c["at_least"]["count"].is_number()).expect("an image increment");
        let id = created["where"]["id"].as_i64().unwrap();
        if pipeline == "false" {
            continue;
        }
        // Break the database in three ways and cut the log's last line: each is counted.
        admin_ok(&url, &["query", "Messages", "--type", "delete", "--filter", &format!(r#"{{"id": {id}}}"#)]);
        let other = checks
            .iter()
            .find(|c| {
                c["model"] == "Messages" && c["any_of"]["processed_plain_text"].is_array() && c["where"]["id"] != id
            })
            .unwrap();
        let filter = other["where"].to_string();
        admin_ok(
            &url,
            &[
                "query",
                "Messages",
                "--type",
                "update",
                "--filter",
                &filter,
                "--data",
                r#"{"processed_plain_text": "changed"}"#,
            ],
        );
        let hash = counter["where"]["emoji_hash"].as_str().unwrap();
        let twin = format!(
            r#"{{"image_id": "twin", "emoji_hash": "{hash}", "path": "twin.png", "type": "emoji", "timestamp": 1.75e9}}"#
        );
        admin_ok(&url, &["query", "Images", "--type", "create", "--data", &twin]);
        std::fs::write(&log, format!("{text}{{\"model\": \"Messa")).unwrap();
        let (code, v) = verify(&url, &log);
        assert_eq!(code, Some(2), "{v}");
        let lost_checks = checks.iter().filter(|c| c["model"] == "Messages" && c["where"]["id"] == id).count() as u64;
        let counters = checks.iter().filter(|c| c["where"]["emoji_hash"] == hash).count() as u64;
        assert_eq!(v["lost"].as_u64(), Some(lost_checks), "every check of the deleted row: {v}");
        assert_eq!(v["mismatched"], 1, "{v}");
        assert_eq!(v["duplicated"].as_u64(), Some(counters), "{v}");
        assert_eq!(v["torn_lines"], 1, "{v}");
        assert_eq!(v["ok"], false);
        assert!(v["problems"][0].as_str().unwrap().contains("lost"), "{v}");
    }
}
