//! `botdb-admin verify --ack-log PATH`: after a crash, checks that every write an acknowledgement log
//! (`botdb-loadtest --ack-log`) recorded is in the database, by key and content, and that the database is
//! sound. The log's format is described in the load harness (`acklog.rs`).

use std::io::BufRead;
use std::process::ExitCode;

use botdb::{Db, Error, Result};
use serde_json::{Value, json};

/// Problems listed in the report (all are counted).
const SHOWN: usize = 10;

/// What the checks found.
#[derive(Default, serde::Serialize)]
struct Verdict {
    checks: u64,
    verified: u64,
    lost: u64,
    duplicated: u64,
    mismatched: u64,
    torn_lines: u64,
    problems: Vec<String>,
}

impl Verdict {
    fn problem(&mut self, what: String) {
        if self.problems.len() < SHOWN {
            self.problems.push(what);
        }
    }

    /// Runs one check: `where` matches exactly one row, which holds `any_of` and `at_least`.
    async fn run(&mut self, db: &Db, line: u64, check: &Value) -> Result<()> {
        let bad = |why: &str| Error::InvalidRequest(format!("ack log line {line}: {why}"));
        let model = check["model"].as_str().ok_or_else(|| bad("no model"))?;
        let filter = check.get("where").ok_or_else(|| bad("no where"))?;
        self.checks += 1;
        let rows = db.find(model, filter, &[], Some(2)).await?;
        let row = match rows.len() {
            0 => {
                self.lost += 1;
                self.problem(format!("line {line}: lost: no {model} row matches {filter}"));
                return Ok(());
            }
            1 => &rows[0],
            _ => {
                self.duplicated += 1;
                self.problem(format!("line {line}: duplicated: several {model} rows match {filter}"));
                return Ok(());
            }
        };
        let mut wrong = Vec::new();
        for (field, allowed) in check["any_of"].as_object().into_iter().flatten() {
            let have = row.get(field).unwrap_or(&Value::Null);
            if !allowed.as_array().is_some_and(|a| a.iter().any(|v| same(have, v))) {
                wrong.push(format!("{field} is {have}, expected one of {allowed}"));
            }
        }
        for (field, floor) in check["at_least"].as_object().into_iter().flatten() {
            let have = row.get(field).unwrap_or(&Value::Null);
            if !(have.as_f64().zip(floor.as_f64())).is_some_and(|(h, f)| h >= f) {
                wrong.push(format!("{field} is {have}, expected at least {floor}"));
            }
        }
        if wrong.is_empty() {
            self.verified += 1;
        } else {
            self.mismatched += 1;
            self.problem(format!("line {line}: {model} {filter}: {}", wrong.join("; ")));
        }
        Ok(())
    }
}

/// Equal values, numbers within a millionth (a single-precision FLOAT column on MySQL), booleans also as 0/1.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-6 * x.abs().max(y.abs())
        }
        (Value::Bool(x), Value::Number(n)) | (Value::Number(n), Value::Bool(x)) => n.as_i64() == Some(i64::from(*x)),
        _ => a == b,
    }
}

/// Reads the log line by line (only newline-terminated lines count: a line cut by a kill was never fully
/// recorded), runs every check, then the database's integrity check. Exit 0 when all hold, 2 otherwise.
pub(crate) async fn verify(db: &Db, path: &std::path::Path) -> Result<ExitCode> {
    let io = |e: std::io::Error| Error::InvalidRequest(format!("ack log {}: {e}", path.display()));
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut verdict = Verdict::default();
    let (mut header, mut text, mut line) = (Value::Null, String::new(), 0u64);
    loop {
        text.clear();
        if reader.read_line(&mut text).map_err(io)? == 0 {
            break;
        }
        line += 1;
        if !text.ends_with('\n') {
            verdict.torn_lines += 1;
            break;
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidRequest(format!("ack log line {line} is not JSON ({e}); is this an ack log?"))
        })?;
        if line == 1 {
            if value["ack_log"] != 1 {
                return Err(Error::InvalidRequest(format!("{} has no ack log header (version 1)", path.display())));
            }
            header = value;
            continue;
        }
        verdict.run(db, line, &value).await?;
    }
    let integrity_ok = db.check().await?.integrity_ok;
    let ok = integrity_ok && verdict.lost + verdict.duplicated + verdict.mismatched == 0;
    let mut report = serde_json::to_value(&verdict).unwrap_or_default();
    report["logged_database"] = header["database"].clone();
    report["verified_database"] = json!(db.settings().database.url.redacted());
    report["integrity_ok"] = json!(integrity_ok);
    report["ok"] = json!(ok);
    crate::commands::print(&report)?;
    if !ok {
        eprintln!("error: acknowledged writes are missing or wrong, or the integrity check failed (see stdout)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
