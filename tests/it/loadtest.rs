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
    for svg in ["read-latency.svg", "throughput.svg"] {
        let text = std::fs::read_to_string(dir.path().join("report").join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
    }
}
