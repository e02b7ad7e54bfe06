//! The acknowledgement log (`--ack-log PATH`): every write botdb acknowledged, recorded outside the process as
//! a check that `botdb-admin verify --ack-log PATH` runs against the database after a crash.
//!
//! One JSON line per acknowledged write, after a header line. A check names its row (`where`, a filter that
//! must match exactly one row: 0 is a lost write, 2 a duplicated one) and what the row must hold: `any_of`
//! (each field equals one of the values: the acknowledged one, or one a *later* write of the same message
//! may have set, since that write may have committed just before the kill without being recorded) and
//! `at_least` (a counter that only grows). Fields of rows that other messages also write (a chat's activity
//! time) are not checked by value, only the row's presence. A message's lines are written together, with one
//! `write` call, once all of its writes are acknowledged: a SIGKILL keeps what the kernel has, and a line
//! cut by it has no newline, which the verifier ignores.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use crate::systems::{Write, botdb_write};
use crate::workload::Call;

/// The open log of one run.
pub(crate) struct AckLog {
    file: Mutex<std::fs::File>,
    /// Acknowledged increments per key (`model:filter`), so a counter's floor is known.
    increments: Mutex<HashMap<String, u64>>,
}

/// What the seeded dataset's counters start at (`Images.count`).
const SEEDED_COUNT: u64 = 1;

impl AckLog {
    /// Creates (truncates) the log and writes its header, naming the database (password redacted).
    pub(crate) fn create(path: &std::path::Path, database: &str) -> std::io::Result<AckLog> {
        let mut file = std::fs::File::create(path)?;
        let header = json!({"ack_log": 1, "database": botdb::DatabaseUrl::new(database).redacted()});
        file.write_all(format!("{header}\n").as_bytes())?;
        Ok(AckLog { file: Mutex::new(file), increments: Mutex::default() })
    }

    /// Appends one message's checks with a single `write` call.
    pub(crate) fn append(&self, checks: &[Value]) -> std::io::Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for c in checks {
            text.push_str(&c.to_string());
            text.push('\n');
        }
        self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_all(text.as_bytes())
    }

    /// The check of `calls[k]`, acknowledged with `id` (a created row's id). `created` maps the keys of rows
    /// this message created (`model:field=value`) to their ids, and is updated here.
    pub(crate) fn check(
        &self,
        calls: &[Call],
        k: usize,
        id: Option<i64>,
        created: &mut HashMap<String, i64>,
    ) -> Option<Value> {
        match botdb_write(&calls[k])? {
            Write::Create(model, data) => {
                let id = id?;
                let row = data.as_object()?.clone();
                for (f, v) in &row {
                    created.insert(row_key(model, f, v), id);
                }
                Some(json!({"model": model, "where": {"id": id}, "any_of": any_of(calls, k, model, &row, &row)}))
            }
            Write::Update(model, filter, data) => {
                let (f, v) = filter.as_object()?.iter().next()?;
                let Some(&id) = created.get(&row_key(model, f, v)) else {
                    // A row other messages write too: only its presence is this write's to check.
                    return Some(json!({"model": model, "where": filter}));
                };
                let set = data.as_object()?.clone();
                for (f, v) in &set {
                    created.insert(row_key(model, f, v), id);
                }
                let mut state = filter.as_object()?.clone();
                state.extend(set.clone());
                Some(json!({"model": model, "where": {"id": id}, "any_of": any_of(calls, k, model, &state, &set)}))
            }
            Write::Increment(model, filter, field) => {
                let mut counts = self.increments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = counts.entry(format!("{model}:{filter}")).or_insert(0);
                *n += 1;
                Some(json!({"model": model, "where": filter, "at_least": {field: SEEDED_COUNT + *n}}))
            }
        }
    }
}

fn row_key(model: &str, field: &str, value: &Value) -> String {
    format!("{model}:{field}={value}")
}

/// For each field of `fields`: its value, then every value a later write of the same message sets on the same
/// row (found by following `state`, the row's known fields, through those writes' filters).
fn any_of(calls: &[Call], k: usize, model: &str, state: &Map<String, Value>, fields: &Map<String, Value>) -> Value {
    let mut state = state.clone();
    let mut out: Map<String, Value> = fields.iter().map(|(f, v)| (f.clone(), json!([v]))).collect();
    for later in &calls[k + 1..] {
        let Some(Write::Update(m, filter, data)) = botdb_write(later) else { continue };
        let Some(filter) = filter.as_object() else { continue };
        if m != model || !filter.iter().all(|(f, v)| state.get(f) == Some(v)) {
            continue;
        }
        for (f, v) in data.as_object().into_iter().flatten() {
            state.insert(f.clone(), v.clone());
            if let Some(Value::Array(values)) = out.get_mut(f) {
                values.push(v.clone());
            }
        }
    }
    Value::Object(out)
}
