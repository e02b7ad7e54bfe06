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
