//! Whole tables moved: copies between backends (SQLite → the backend under test → SQLite), JSONL export and
//! import, checksums, idempotence, validation before writing, and caches that see what was moved.

use botdb::{Db, Kind, ModelDef, TableSum};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb, backend_tests, open};

const NONE: &[String] = &[];

/// Every column of `model` filled, varied by `i`: NULLs, extreme floats, quotes, 4-byte characters, a
/// 10,000-character text, both booleans.
fn full_row(model: &ModelDef, i: i64) -> Value {
    let mut row = serde_json::Map::new();
    for c in model.columns.iter().filter(|c| c.kind != Kind::Id) {
        let v = if c.nullable && i % 3 == 0 {
            Value::Null
        } else {
            match c.kind {
                Kind::Id | Kind::Int => json!(if i % 4 == 1 { -i } else { i * 1000 }),
                Kind::Float => json!([1e300, -2.5e-7, 0.1, 1_700_000_000.25 + i as f64][(i % 4) as usize]),
                Kind::Bool => json!(i % 2 == 0),
                Kind::DateTime => json!(format!("2025-06-0{} 12:34:56.123456", 1 + i % 9)),
                Kind::Text => match c.max_len {
                    Some(n) => json!(format!("t{i}'\"é😀").chars().take(n as usize).collect::<String>()),
                    None if i % 5 == 1 => json!(format!("t{i}{}", "é😀".repeat(5000))),
                    None => json!(format!("t{i} 'quoted' \"q\" \\ é😀")),
                },
            }
        };
        row.insert(c.name.to_owned(), v);
    }
    Value::Object(row)
}

/// Six rows of every model, and 2,100 messages (three pages).
async fn seed(db: &Db) {
    for m in botdb::models() {
        for i in 1..=6 {
            db.create(m.name, &full_row(m, i)).await.unwrap_or_else(|e| panic!("{} row {i}: {e}", m.name));
        }
    }
    let messages = botdb::model("Messages").unwrap();
    let rows: Vec<Value> = (100..2200).map(|i| full_row(messages, i)).collect();
    db.insert_many("Messages", &rows).await.unwrap();
}

fn written(moved: &[botdb::TableMoved]) -> u64 {
    moved.iter().map(|t| t.written).sum()
}

async fn sums(db: &Db) -> Vec<TableSum> {
    db.table_sums(NONE).await.unwrap()
}

async fn copy_round_trip(t: &TestDb) {
    let src = open(Backend::Sqlite).await.unwrap();
    seed(&src.db).await;
    let expected = sums(&src.db).await;
    assert_eq!(expected.iter().find(|s| s.model == "Messages").unwrap().rows, 2106);

    let moved = src.db.copy_into(&t.db, NONE, &|_, _| {}).await.unwrap();
    assert_eq!(written(&moved), 2106 + 24 * 6);
    assert_eq!(sums(&t.db).await, expected, "the copy holds the same rows, column for column");
    let again = src.db.copy_into(&t.db, NONE, &|_, _| {}).await.unwrap();
    assert_eq!(written(&again), 0, "a second copy adds nothing");
    // New rows get ids past the copied ones (PostgreSQL's sequences were moved).
    let person = botdb::model("PersonInfo").unwrap();
    let row = t.db.create("PersonInfo", &full_row(person, 50)).await.unwrap();
    assert!(row["id"].as_i64().unwrap() > 6, "{row:?}");
    t.db.delete("PersonInfo", &json!({"id": row["id"]})).await.unwrap();

    // And back to SQLite.
    let back = open(Backend::Sqlite).await.unwrap();
    t.db.copy_into(&back.db, NONE, &|_, _| {}).await.unwrap();
    assert_eq!(sums(&back.db).await, expected);

    // Only some tables.
    let only = open(Backend::Sqlite).await.unwrap();
    let some = vec!["ChatStreams".to_owned(), "Images".to_owned()];
    let moved = t.db.copy_into(&only.db, &some, &|_, _| {}).await.unwrap();
    assert_eq!(moved.iter().map(|m| m.model).collect::<Vec<_>>(), ["ChatStreams", "Images"]);
    assert_eq!(only.db.count("Messages", &json!({})).await.unwrap(), 0);
    for c in [src, back, only] {
        c.close().await;
    }
}

async fn export_then_import(t: &TestDb) {
    seed(&t.db).await;
    let expected = sums(&t.db).await;
    let dir = tempfile::tempdir().unwrap();
    let seen = std::sync::Mutex::new(0u64);
    let moved = t.db.export_jsonl(dir.path(), NONE, &|_, n| *seen.lock().unwrap() += n).await.unwrap();
    assert_eq!(written(&moved), 2106 + 24 * 6);
    assert!(*seen.lock().unwrap() > 0, "progress was reported");
    let lines = std::fs::read_to_string(dir.path().join("Messages.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 2106);
    let err = t.db.export_jsonl(dir.path(), NONE, &|_, _| {}).await.unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");

    let Some(other) = open(t.backend).await else { return };
    // A cached miss before the import must not hide the imported row afterwards.
    assert!(other.db.find_one("PersonInfo", &json!({"id": 1}), &[]).await.unwrap().is_none());
    let imported = other.db.import_jsonl(dir.path(), NONE, &|_, _| {}).await.unwrap();
    assert_eq!(written(&imported), 2106 + 24 * 6);
    assert_eq!(sums(&other.db).await, expected);
    assert!(other.db.find_one("PersonInfo", &json!({"id": 1}), &[]).await.unwrap().is_some());
    let twice = other.db.import_jsonl(dir.path(), NONE, &|_, _| {}).await.unwrap();
    assert_eq!(written(&twice), 0, "importing twice adds nothing");
    assert_eq!(sums(&other.db).await, expected);
    other.close().await;
}

async fn a_bad_line_imports_nothing(t: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let person = botdb::model("PersonInfo").unwrap();
    let mut good = full_row(person, 1);
    good["id"] = json!(7);
    let mut bad = full_row(person, 2);
    bad["id"] = json!(8);
    bad["no_such_field"] = json!(1);
    let text = format!("{good}\n\n{bad}\n");
    std::fs::write(dir.path().join("PersonInfo.jsonl"), text).unwrap();
    let err = t.db.import_jsonl(dir.path(), NONE, &|_, _| {}).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("PersonInfo.jsonl:3:") && msg.contains("no_such_field"), "{msg}");
    assert_eq!(t.db.count("PersonInfo", &json!({})).await.unwrap(), 0, "nothing was written");

    // A row without its id, and a file named but missing.
    std::fs::write(dir.path().join("PersonInfo.jsonl"), format!("{}\n", full_row(person, 3))).unwrap();
    let err = t.db.import_jsonl(dir.path(), NONE, &|_, _| {}).await.unwrap_err();
    assert!(err.to_string().contains("PersonInfo.jsonl:1: the row has no id"), "{err}");
    let err = t.db.import_jsonl(dir.path(), &["Images".to_owned()], &|_, _| {}).await.unwrap_err();
    assert!(err.to_string().contains("Images.jsonl"), "{err}");
    let err = t.db.table_sums(&["Nope".to_owned()]).await.unwrap_err();
    assert!(matches!(err, botdb::Error::UnknownModel { .. }), "{err}");
}

backend_tests!(copy_round_trip, export_then_import, a_bad_line_imports_nothing);
