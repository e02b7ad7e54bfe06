//! Bad input as a table: more than 200 cases through the name-based API on every backend, and through
//! `botdb-admin`. Each case gets the typed error the table names (the same verdict on every backend) or a
//! documented accept; after an error nothing was written (every table's row count and checksum unchanged);
//! the admin binary answers each bad request with exit 1 and one `error:` line of bounded length, never a
//! panic.

use botdb::{Db, Error};
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(bad_input_corpus);

/// What a case runs.
#[derive(Debug, Clone, Copy)]
enum Op {
    Find,
    Count,
    Create,
    Update,
    Delete,
}

/// One case: an operation on a model with a filter and data, and the expected verdict: `Ok` or the name
/// of the error's variant.
struct Case {
    what: String,
    op: Op,
    model: String,
    filter: Value,
    data: Value,
    expect: &'static str,
}

fn case(what: impl Into<String>, op: Op, model: &str, filter: Value, data: Value, expect: &'static str) -> Case {
    Case { what: what.into(), op, model: model.to_owned(), filter, data, expect }
}

fn usage() -> Value {
    json!({"model_name": "m", "model_assign_name": "a", "model_api_provider": "p", "user_id": "u1",
        "request_type": "chat", "endpoint": "/", "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
        "cost": 0.5, "status": "ok"})
}

fn with(mut row: Value, field: &str, value: Value) -> Value {
    row[field] = value;
    row
}

/// The variant's name of an error (its `Debug` form starts with it).
fn variant(e: &Error) -> String {
    format!("{e:?}").chars().take_while(|c| c.is_alphanumeric()).collect()
}

fn corpus() -> Vec<Case> {
    use Op::*;
    let mut cases = Vec::new();
    let long = "x".repeat(10_000);
    // Unknown models, whatever they carry, on every operation.
    for name in [
        "",
        "messages ",
        "Messages; DROP TABLE messages",
        "Mess\nages",
        long.as_str(),
        "💥",
        "Messages\0",
        "../x",
        "llm_usage",
    ] {
        for op in [Find, Count, Create, Update, Delete] {
            cases.push(case(
                format!("model {:.20?}", name),
                op,
                name,
                json!({"id": 1}),
                json!({"cost": 1.0}),
                "UnknownModel",
            ));
        }
    }
    // Unknown fields and injection in field names, in filters of reads and writes and in data.
    for field in [
        "user_idd",
        "user_id\" OR 1=1 --",
        "user_id; DROP TABLE llm_usage",
        "",
        long.as_str(),
        "user_id\n",
        "user_id ",
        "USER_ID",
        "$nor",
        "id)--",
    ] {
        for op in [Find, Count, Update, Delete] {
            cases.push(case(
                format!("filter field {:.20?}", field),
                op,
                "LLMUsage",
                json!({ field: "u1" }),
                json!({"cost": 1.0}),
                "UnknownField",
            ));
        }
        cases.push(case(
            format!("data field {:.20?}", field),
            Update,
            "LLMUsage",
            json!({"user_id": "u1"}),
            json!({ field: 1 }),
            "UnknownField",
        ));
        cases.push(case(
            format!("create field {:.20?}", field),
            Create,
            "LLMUsage",
            Value::Null,
            with(usage(), field, json!(1)),
            "UnknownField",
        ));
    }
    // Unknown operators, injection in operators.
    for op in ["$LIKE", "$regex", "$where", "$GT", "$in; DROP TABLE x", "", "$", "gt", "$exists", "$eq\n"] {
        for o in [Find, Delete] {
            cases.push(case(
                format!("operator {op:?}"),
                o,
                "LLMUsage",
                json!({"user_id": { op: "u1" }}),
                Value::Null,
                "UnknownOperator",
            ));
        }
    }
    // Values that do not fit their column, in filters and in data (INTEGER, FLOAT, TEXT, BOOLEAN, DATETIME).
    let bad: [(&str, &str, Vec<Value>); 5] = [
        (
            "LLMUsage",
            "prompt_tokens",
            vec![
                json!("1"),
                json!(1.5),
                json!(2.0),
                json!(true),
                json!([1]),
                json!({"a": 1}),
                json!(u64::MAX),
                json!(i64::MAX),
                json!(i64::from(i32::MIN) - 1),
                json!(1e19),
                json!("NaN"),
            ],
        ),
        ("LLMUsage", "cost", vec![json!("0.5"), json!(true), json!([0.5]), json!({}), json!("inf"), json!("NaN")]),
        (
            "LLMUsage",
            "model_name",
            vec![json!(1), json!(1.5), json!(true), json!(["m"]), json!({"m": 1}), json!("a\0b")],
        ),
        ("Messages", "is_mentioned", vec![json!("true"), json!(2), json!(0.5), json!([true]), json!({})]),
        (
            "LLMUsage",
            "timestamp",
            vec![
                json!("2026-13-01 00:00:00"),
                json!("2026-12-01 23:59:60"),
                json!("0999-01-01 00:00:00"),
                json!("yesterday"),
                json!(true),
                json!([]),
                json!(1e20),
            ],
        ),
    ];
    for (model, field, values) in bad {
        for v in values {
            // An object in a filter is an operator object: its keys are operators.
            let equal = match &v {
                Value::Object(o) if o.is_empty() => "InvalidRequest",
                Value::Object(_) => "UnknownOperator",
                _ => "InvalidValue",
            };
            cases.push(case(format!("{field} = {v}"), Find, model, json!({ field: v.clone() }), Value::Null, equal));
            cases.push(case(
                format!("{field} $gt {v}"),
                Count,
                model,
                json!({ field: {"$gt": v.clone()} }),
                Value::Null,
                "InvalidValue",
            ));
            cases.push(case(
                format!("set {field} = {v}"),
                Update,
                model,
                json!({"id": 1}),
                json!({ field: v.clone() }),
                "InvalidValue",
            ));
            if model == "LLMUsage" {
                cases.push(case(
                    format!("create {field} = {v}"),
                    Create,
                    model,
                    Value::Null,
                    with(usage(), field, v),
                    "InvalidValue",
                ));
            }
        }
    }
    // NULL where the column is NOT NULL; required fields missing.
    for field in ["model_name", "prompt_tokens", "cost"] {
        cases.push(case(
            format!("create {field} null"),
            Create,
            "LLMUsage",
            Value::Null,
            with(usage(), field, Value::Null),
            "InvalidValue",
        ));
        cases.push(case(
            format!("set {field} null"),
            Update,
            "LLMUsage",
            json!({"id": 1}),
            json!({ field: null }),
            "InvalidValue",
        ));
    }
    cases.push(case("create nothing", Create, "LLMUsage", Value::Null, json!({}), "MissingRequired"));
    cases.push(case(
        "create without model_name",
        Create,
        "Messages",
        Value::Null,
        json!({"message_id": "x"}),
        "MissingRequired",
    ));
    // Request shapes.
    for f in [json!([1]), json!("user_id"), json!(1), json!(true)] {
        for op in [Find, Count, Update, Delete] {
            cases.push(case(format!("filter {f}"), op, "LLMUsage", f.clone(), json!({"cost": 1.0}), "InvalidRequest"));
        }
    }
    for d in [json!([1]), json!("cost"), json!(1), json!(null)] {
        cases.push(case(format!("data {d}"), Create, "LLMUsage", Value::Null, d.clone(), "InvalidRequest"));
        cases.push(case(format!("update data {d}"), Update, "LLMUsage", json!({"id": 1}), d, "InvalidRequest"));
    }
    cases.push(case("update nothing", Update, "LLMUsage", json!({"id": 1}), json!({}), "InvalidRequest"));
    for v in [json!(1), json!("u1"), json!({"a": 1}), json!(null)] {
        cases.push(case(
            format!("$in {v}"),
            Find,
            "LLMUsage",
            json!({"user_id": {"$in": v.clone()}}),
            Value::Null,
            "InvalidRequest",
        ));
        cases.push(case(
            format!("$nin {v}"),
            Delete,
            "LLMUsage",
            json!({"user_id": {"$nin": v}}),
            Value::Null,
            "InvalidRequest",
        ));
    }
    let many: Vec<Value> = (0..30_001).map(|i| json!(format!("u{i}"))).collect();
    cases.push(case(
        "$in of 30,001",
        Find,
        "LLMUsage",
        json!({"user_id": {"$in": many.clone()}}),
        Value::Null,
        "InvalidRequest",
    ));
    cases.push(case(
        "$nin of 30,001",
        Delete,
        "LLMUsage",
        json!({"user_id": {"$nin": many}}),
        Value::Null,
        "InvalidRequest",
    ));
    cases.push(case(
        "$in of mixed types",
        Find,
        "LLMUsage",
        json!({"prompt_tokens": {"$in": [1, "2"]}}),
        Value::Null,
        "InvalidValue",
    ));
    // Nesting: an operator object inside an operator object, 10,000 deep.
    // (Built by moving maps: `json!` would clone each level recursively.)
    let nest = |key: &str, inner: Value| Value::Object(serde_json::Map::from_iter([(key.to_owned(), inner)]));
    let deep = (0..10_000).fold(json!("u1"), |inner, _| nest("$ne", inner));
    cases.push(case("nesting 10,000 deep", Find, "LLMUsage", nest("user_id", deep), Value::Null, "InvalidValue"));
    // Nested filters: shapes, depth, and errors inside them.
    for (what, f, expect) in [
        ("$or of a string", json!({"$or": "u1"}), "InvalidRequest"),
        ("$or of none", json!({"$or": []}), "InvalidRequest"),
        ("$or of an empty filter", json!({"$or": [{}]}), "InvalidRequest"),
        ("$or of a number", json!({"$or": [1]}), "InvalidRequest"),
        ("$and of an object", json!({"$and": {"user_id": "u1"}}), "InvalidRequest"),
        ("$not of an array", json!({"$not": [{"user_id": "u1"}]}), "InvalidRequest"),
        ("$not of nothing", json!({"$not": {}}), "InvalidRequest"),
        ("$or with an unknown field", json!({"$or": [{"user_id": "u1"}, {"user_idd": "u2"}]}), "UnknownField"),
        ("$not with an unknown operator", json!({"$not": {"user_id": {"$regex": "u.*"}}}), "UnknownOperator"),
        ("$and with a bad value", json!({"$and": [{"prompt_tokens": "1"}]}), "InvalidValue"),
        (
            "$or with $in of 30,001",
            json!({"$or": [{"user_id": {"$in": (0..30_001).collect::<Vec<_>>().iter().map(|i| format!("u{i}")).collect::<Vec<_>>()}}]}),
            "InvalidRequest",
        ),
        ("$like on a number column", json!({"cost": {"$like": "1%"}}), "InvalidRequest"),
        ("$contains on an integer column", json!({"prompt_tokens": {"$contains": "1"}}), "InvalidRequest"),
        ("$like of a number", json!({"user_id": {"$like": 1}}), "InvalidValue"),
        ("$like of an array", json!({"user_id": {"$like": ["u%"]}}), "InvalidValue"),
        ("$like ending in its escape", json!({"user_id": {"$like": "u\\"}}), "InvalidRequest"),
        ("$contains with NUL", json!({"user_id": {"$contains": "a\0b"}}), "InvalidValue"),
        ("accept $like", json!({"user_id": {"$like": "%'; DROP TABLE llm_usage; --%"}}), "Ok"),
        ("accept $contains of wildcards", json!({"user_id": {"$contains": "%_\\"}}), "Ok"),
        ("accept $or", json!({"$or": [{"user_id": "u1"}, {"cost": {"$gt": 1.0}}]}), "Ok"),
        ("accept $not", json!({"$not": {"user_id": "u1"}}), "Ok"),
        ("accept $and in $or", json!({"$or": [{"$and": [{"user_id": "u1"}, {"cost": 0.5}]}, {"user_id": null}]}), "Ok"),
    ] {
        for op in [Find, Count, Update, Delete] {
            // (Writes with an accepted filter change rows, so accepts are only read.)
            if expect == "Ok" && matches!(op, Update | Delete) {
                continue;
            }
            cases.push(case(what, op, "LLMUsage", f.clone(), json!({"cost": 1.0}), expect));
        }
    }
    let not17 = (0..17).fold(json!({"user_id": "u1"}), |inner, _| nest("$not", inner));
    cases.push(case("$not 17 deep", Find, "LLMUsage", not17, Value::Null, "InvalidRequest"));
    let not16 = (0..16).fold(json!({"user_id": "u1"}), |inner, _| nest("$not", inner));
    cases.push(case("$not 16 deep", Count, "LLMUsage", not16, Value::Null, "Ok"));
    let or_deep = (0..10_000).fold(json!({"user_id": "u1"}), |inner, _| nest("$or", Value::Array(vec![inner])));
    cases.push(case("$or 10,000 deep", Find, "LLMUsage", or_deep, Value::Null, "InvalidRequest"));
    // Documented accepts: edge values that every backend stores and reads back alike.
    let accepts: [(&str, Value); 8] = [
        ("prompt_tokens", json!(i32::MAX)),
        ("prompt_tokens", json!(i32::MIN)),
        ("prompt_tokens", json!(-0)),
        ("cost", json!(-0.0)),
        ("cost", json!(1e300)),
        ("model_name", json!("'; DROP TABLE llm_usage; --")),
        ("model_name", json!("\u{1F4A5}\u{200D}")),
        ("timestamp", json!("2026-12-01 23:59:59")),
    ];
    for (field, v) in accepts {
        cases.push(case(
            format!("accept {field} = {v}"),
            Create,
            "LLMUsage",
            Value::Null,
            with(usage(), field, v.clone()),
            "Ok",
        ));
        cases.push(case(
            format!("accept filter {field} = {v}"),
            Find,
            "LLMUsage",
            json!({ field: v }),
            Value::Null,
            "Ok",
        ));
    }
    cases.push(case("$in of none", Find, "LLMUsage", json!({"user_id": {"$in": []}}), Value::Null, "Ok"));
    cases.push(case("$in of one", Count, "LLMUsage", json!({"user_id": {"$in": ["u1"]}}), Value::Null, "Ok"));
    cases.push(case("$nin of none", Count, "LLMUsage", json!({"user_id": {"$nin": []}}), Value::Null, "Ok"));
    cases.push(case(
        "text of 10,000 characters",
        Create,
        "LLMUsage",
        Value::Null,
        with(usage(), "endpoint", json!(long)),
        "Ok",
    ));
    cases
}

/// Drops a value of one-entry maps and one-element arrays level by level (serde_json's drop recurses, and 10,000 levels overflow a
/// test thread's stack: the caller's problem, not botdb's).
fn dismantle(mut v: Value) {
    loop {
        v = match v {
            Value::Object(m) => match m.into_iter().next() {
                Some((_, inner)) => inner,
                None => break,
            },
            Value::Array(a) => match a.into_iter().next() {
                Some(inner) => inner,
                None => break,
            },
            _ => break,
        };
    }
}

async fn run(db: &Db, c: &Case) -> Result<(), Error> {
    match c.op {
        Op::Find => db.find(&c.model, &c.filter, &[], Some(5)).await.map(drop),
        Op::Count => db.count(&c.model, &c.filter).await.map(drop),
        Op::Create => db.create(&c.model, &c.data).await.map(drop),
        Op::Update => db.update(&c.model, &c.filter, &c.data).await.map(drop),
        Op::Delete => db.delete(&c.model, &c.filter).await.map(drop),
    }
}

async fn bad_input_corpus(t: &TestDb) {
    let db = &t.db;
    db.create("LLMUsage", &usage()).await.unwrap();
    let cases = corpus();
    assert!(cases.len() >= 200, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let before = db.table_sums(&[]).await.unwrap();
        let got = match run(db, c).await {
            Ok(()) => "Ok".to_owned(),
            Err(e) => {
                let shown = e.to_string();
                assert!(
                    !shown.contains('\n') && shown.chars().count() <= 1_000,
                    "{}: one bounded line: {shown:.300}",
                    c.what
                );
                assert_eq!(db.table_sums(&[]).await.unwrap(), before, "{}: an error wrote nothing", c.what);
                variant(&e)
            }
        };
        if got != c.expect {
            wrong.push(format!("{} ({:?} {:.30}): expected {}, got {got}", c.what, c.op, c.model, c.expect));
        }
    }
    let n = cases.len();
    cases.into_iter().for_each(|c| dismantle(c.filter));
    assert!(wrong.is_empty(), "{:?}: {} of {n} cases differ:\n{}", t.backend, wrong.len(), wrong.join("\n"));
}

/// The admin binary's answer to a bad request: exit 1 and one bounded `error:` line, never a panic.
fn admin_refuses(url: &str, args: &[&str], what: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", url])
        .args(args)
        .env_remove("BOTDB_CONFIG_DIR")
        .output()
        .expect("run botdb-admin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err:.500}");
    assert!(err.starts_with("error: ") && err.lines().count() == 1 && err.len() <= 600, "{what}: {err:.700}");
}

/// The corpus's reads through `botdb-admin query` (same verdicts: exit 0 for an accept, 1 for an error), and
/// malformed JSON the API never sees.
#[test]
fn bad_input_through_the_admin_binary() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/corpus.sqlite?mode=rwc", dir.path().display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
        .args(["--database-url", &url, "migrate", "up"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut ran = 0;
    for c in corpus() {
        let kind = match c.op {
            Op::Find => "get",
            Op::Count => "count",
            _ => continue,
        };
        // (serde_json's writer recurses: the deep case goes through the binary as text, below.)
        if c.what.contains("10,000 deep") {
            dismantle(c.filter);
            continue;
        }
        let filter = serde_json::to_string(&c.filter).unwrap_or_default();
        // argv cannot carry NUL, and one argument is at most 128 KiB.
        if c.model.contains('\0') || c.model.is_empty() || filter.len() > 100_000 {
            dismantle(c.filter);
            continue;
        }
        let args = ["query", &c.model, "--type", kind, "--filter", &filter];
        if c.expect == "Ok" {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_botdb-admin"))
                .args(["--database-url", &url])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: {}", c.what, String::from_utf8_lossy(&out.stderr));
        } else {
            admin_refuses(&url, &args, &c.what);
        }
        ran += 1;
        dismantle(c.filter);
    }
    assert!(ran >= 100, "{ran} corpus cases through the binary");
    let deep = "[".repeat(10_000);
    let long_name = "M".repeat(1_000_000 / 8);
    for (what, filter) in [
        ("cut JSON", "{"),
        ("no value", r#"{"user_id":}"#),
        ("cut array", "[1,2"),
        ("lone surrogate", r#"{"user_id": "\ud800"}"#),
        ("duplicate keys", r#"{"user_id": "a", "user_id": "b"}"#),
        ("NaN literal", r#"{"cost": NaN}"#),
        ("1e400", r#"{"cost": 1e400}"#),
        ("trailing text", r#"{"user_id": "x"} and more"#),
        ("empty", ""),
        ("nesting 10,000 deep", deep.as_str()),
    ] {
        admin_refuses(&url, &["query", "LLMUsage", "--filter", filter], what);
        admin_refuses(
            &url,
            &["query", "LLMUsage", "--type", "update", "--filter", r#"{"id": 1}"#, "--data", filter],
            what,
        );
    }
    admin_refuses(&url, &["query", &long_name], "a 125,000-character model name");
    admin_refuses(&url, &["query", "Mess\nages"], "a newline in a model name");
    admin_refuses(
        &url,
        &["save", "LLMUsage", "--data", "{}", "--key-field", "user_id\n--", "--key-value", "1"],
        "key field",
    );
}
