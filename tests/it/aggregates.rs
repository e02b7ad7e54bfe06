//! Aggregates and DISTINCT on every backend against values computed here: the same numbers and types
//! everywhere, `null`/0 over no rows, typed refusals, and a session's own pending writes counted.

use botdb::Error;
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(aggregates_and_distinct_match_the_reference);

async fn aggregates_and_distinct_match_the_reference(t: &TestDb) {
    let db = &t.db;
    let mut rng = fastrand::Rng::with_seed(0xA66);
    let texts = ["", "a", "ab", "Ä中", "hello world", "😂x"];
    let mut rows = Vec::new();
    for i in 0..60 {
        let row = json!({"model_name": format!("m{}", i % 3), "model_assign_name": "a", "model_api_provider": "p",
            "user_id": format!("u{}", i % 4), "time_cost": if i % 7 == 0 { Value::Null } else { json!((i % 5) as f64 * 0.5) },
            "request_type": "chat", "endpoint": texts[rng.usize(..texts.len())], "prompt_tokens": rng.i32(-50..5000),
            "completion_tokens": 2, "total_tokens": 3, "cost": rng.u32(0..1000) as f64 / 8.0, "status": "ok",
            "timestamp": format!("2026-0{}-1{} 10:00:00", 1 + i % 9, i % 10)});
        db.create("LLMUsage", &row).await.unwrap();
        rows.push(row);
    }
    for (filter, pick) in [
        (json!({}), Box::new(|_: &Value| true) as Box<dyn Fn(&Value) -> bool + Send + Sync>),
        (json!({"model_name": "m1"}), Box::new(|r: &Value| r["model_name"] == "m1")),
        (
            json!({"$or": [{"time_cost": null}, {"endpoint": {"$contains": "o"}}]}),
            Box::new(|r: &Value| r["time_cost"].is_null() || r["endpoint"].as_str().unwrap().contains('o')),
        ),
    ] {
        let sel: Vec<&Value> = rows.iter().filter(|r| pick(r)).collect();
        let ints: Vec<i64> = sel.iter().map(|r| r["prompt_tokens"].as_i64().unwrap()).collect();
        let floats: Vec<f64> = sel.iter().map(|r| r["cost"].as_f64().unwrap()).collect();
        let agg = |a: &'static str, f: &'static str| db.aggregate("LLMUsage", a, f, &filter);
        assert_eq!(
            agg("count", "time_cost").await.unwrap(),
            json!(sel.iter().filter(|r| !r["time_cost"].is_null()).count())
        );
        assert_eq!(agg("sum", "prompt_tokens").await.unwrap(), json!(ints.iter().sum::<i64>()), "{filter}");
        assert_eq!(agg("min", "prompt_tokens").await.unwrap(), json!(ints.iter().min().unwrap()));
        assert_eq!(agg("max", "cost").await.unwrap(), json!(floats.iter().cloned().fold(f64::MIN, f64::max)));
        let avg = agg("avg", "prompt_tokens").await.unwrap().as_f64().unwrap();
        let want = ints.iter().sum::<i64>() as f64 / ints.len() as f64;
        assert!((avg - want).abs() < 1e-9 * want.abs().max(1.0), "{avg} vs {want}");
        let sum = agg("sum", "cost").await.unwrap().as_f64().unwrap();
        assert!((sum - floats.iter().sum::<f64>()).abs() < 1e-9, "eighths add exactly");
        let chars: usize = sel.iter().map(|r| r["endpoint"].as_str().unwrap().chars().count()).sum();
        assert_eq!(agg("sum_length", "endpoint").await.unwrap(), json!(chars), "characters, not bytes");
        let newest = sel.iter().map(|r| r["timestamp"].as_str().unwrap()).max().unwrap();
        let max_ts = agg("max", "timestamp").await.unwrap();
        assert!(max_ts.as_str().unwrap().starts_with(newest), "{max_ts} vs {newest}");
        let mut users: Vec<Value> = sel.iter().map(|r| r["user_id"].clone()).collect();
        users.sort_by_key(|v| v.as_str().unwrap().to_owned());
        users.dedup();
        assert_eq!(db.distinct("LLMUsage", "user_id", &filter).await.unwrap(), users, "{filter}");
        // NULL first, then numbers in order.
        let mut costs: Vec<Option<i64>> =
            sel.iter().map(|r| r["time_cost"].as_f64().map(|x| (x * 2.0) as i64)).collect();
        costs.sort();
        costs.dedup();
        let want: Vec<Value> = costs.iter().map(|c| c.map_or(Value::Null, |h| json!(h as f64 / 2.0))).collect();
        assert_eq!(db.distinct("LLMUsage", "time_cost", &filter).await.unwrap(), want, "{filter}");
    }
    // Over no rows.
    let none = json!({"model_name": "nobody"});
    for (a, f, want) in [
        ("count", "id", json!(0)),
        ("sum", "prompt_tokens", Value::Null),
        ("min", "cost", Value::Null),
        ("avg", "cost", Value::Null),
        ("sum_length", "endpoint", json!(0)),
    ] {
        assert_eq!(db.aggregate("LLMUsage", a, f, &none).await.unwrap(), want, "{a}");
    }
    assert_eq!(db.distinct("LLMUsage", "model_name", &none).await.unwrap(), Vec::<Value>::new());
    // Refusals, before any SQL.
    for (a, f) in
        [("sum", "endpoint"), ("avg", "status"), ("min", "endpoint"), ("sum_length", "cost"), ("median", "cost")]
    {
        let e = db.aggregate("LLMUsage", a, f, &json!({})).await.unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{a} {f}: {e}");
    }
    assert!(matches!(db.aggregate("LLMUsage", "sum", "costt", &json!({})).await, Err(Error::UnknownField { .. })));
    // A session's pending write counts for its own aggregate.
    let s = db.session();
    let before = s.aggregate("LLMUsage", "count", "id", &json!({})).await.unwrap().as_u64().unwrap();
    let mut row = rows[0].clone();
    row["model_name"] = json!("late");
    let ticket = s.submit_create("LLMUsage", &row).await.unwrap();
    assert_eq!(s.aggregate("LLMUsage", "count", "id", &json!({})).await.unwrap(), json!(before + 1));
    assert!(s.distinct("LLMUsage", "model_name", &json!({})).await.unwrap().contains(&json!("late")));
    ticket.await.unwrap();
}
