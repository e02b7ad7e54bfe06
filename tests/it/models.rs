//! Every model: create with only its required fields (defaults filled), read back, and every column
//! round-trips (floats, booleans, DATETIME text, NULLs, 4-byte emoji, 10k-character text).

use botdb::{DefaultValue, Kind, models};
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests, required_data};

backend_tests!(create_with_required_fields_fills_defaults, every_column_round_trips);

async fn create_with_required_fields_fills_defaults(t: &TestDb) {
    for m in models() {
        let created = t.db.create(m.name, &required_data(m, 1)).await.unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let read = t.db.find_one(m.name, &json!({"id": created["id"]}), &[]).await.unwrap().unwrap();
        assert_eq!(*read, created, "{}: the returned row is the stored row", m.name);
        assert_eq!(read.len(), m.columns.len());
        for c in m.columns {
            let v = &read[c.name];
            match c.default {
                DefaultValue::None if c.is_required() || c.kind == Kind::Id => {
                    assert!(!v.is_null(), "{}.{}", m.name, c.name)
                }
                DefaultValue::None => {
                    assert!(v.is_null(), "{}.{} defaults to NULL", m.name, c.name)
                }
                DefaultValue::Int(i) => assert_eq!(v, &json!(i), "{}.{}", m.name, c.name),
                DefaultValue::Float(f) => assert_eq!(v, &json!(f), "{}.{}", m.name, c.name),
                DefaultValue::Bool(b) => assert_eq!(v, &json!(b), "{}.{}", m.name, c.name),
                DefaultValue::Text(s) => assert_eq!(v, &json!(s), "{}.{}", m.name, c.name),
                DefaultValue::NowLocal | DefaultValue::NowUtc | DefaultValue::NowLocalText => {
                    let s = v.as_str().unwrap();
                    assert!(
                        botdb::testing::time::parse_datetime(s).is_some() && s.len() == 26,
                        "{}.{}: {s}",
                        m.name,
                        c.name
                    );
                }
                DefaultValue::NowEpoch => {
                    assert!(v.as_f64().unwrap() > 1.7e9, "{}.{}", m.name, c.name)
                }
            }
        }
    }
}

fn edge_value(kind: Kind, max_len: Option<u32>, variant: usize) -> Value {
    match kind {
        Kind::Id => unreachable!(),
        Kind::Int => json!([i32::MAX, i32::MIN, 0][variant % 3]),
        Kind::Float => json!([1_712_345_678.123_456_7, -0.000_123_456_789, 1e300][variant % 3]),
        Kind::Bool => json!(variant.is_multiple_of(2)),
        Kind::DateTime => json!(
            ["2025-12-31 23:59:59.999999", "1999-01-01 00:00:00.000001", "2025-06-15 08:00:00.000000"][variant % 3]
        ),
        Kind::Text => {
            let unit = format!("{variant}🎉中文é");
            let n = max_len.map_or(10_000, |n| n as usize);
            Value::String(unit.chars().cycle().take(n).collect())
        }
    }
}

async fn every_column_round_trips(t: &TestDb) {
    for m in models() {
        for variant in 0..3 {
            let mut data = serde_json::Map::new();
            for c in &m.columns[1..] {
                let v = if variant == 2 && c.nullable { Value::Null } else { edge_value(c.kind, c.max_len, variant) };
                data.insert(c.name.to_owned(), v);
            }
            let created =
                t.db.create(m.name, &Value::Object(data.clone())).await.unwrap_or_else(|e| panic!("{}: {e}", m.name));
            let read = t.db.find_one(m.name, &json!({"id": created["id"]}), &[]).await.unwrap().unwrap();
            for (k, v) in &data {
                assert_eq!(&read[k], v, "{}.{k} (variant {variant}) round-trips", m.name);
            }
        }
    }
}
