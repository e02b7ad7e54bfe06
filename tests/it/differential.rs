//! A differential check: random filters (nested `$or`/`$and`/`$not` included), orders and limits evaluated
//! by an in-memory reference (SQL's three-valued logic) and by each backend give the same rows in the same
//! order.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(random_filters_match_the_reference);

const TEXTS: [&str; 6] = ["a", "B", "ab", "Ä", "中", "b"];

fn pick<T: Clone>(rng: &mut fastrand::Rng, xs: &[T]) -> T {
    xs[rng.usize(..xs.len())].clone()
}

/// A random value for field `f`; `nullable` fields are sometimes null.
fn value(rng: &mut fastrand::Rng, f: &str) -> Value {
    match f {
        "chat_id" => json!(pick(rng, &["c1", "c2", "c3"])),
        "time" => json!(100.0 + rng.u32(0..8) as f64 * 0.5),
        "interest_value" => json!(rng.u32(0..4) as f64 / 4.0),
        "memorized_times" => json!(rng.i32(-2..3)),
        "is_emoji" => json!(rng.bool()),
        _ => json!(pick(rng, &TEXTS)),
    }
}

const FIELDS: [(&str, bool); 7] = [
    ("chat_id", false),
    ("time", false),
    ("interest_value", true),
    ("memorized_times", false),
    ("is_emoji", false),
    ("user_id", true),
    ("priority_mode", true),
];

fn cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap()),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => panic!("mixed types {a} {b}"),
    }
}

/// One operator on one value in SQL's three-valued logic: `None` is UNKNOWN (a comparison with NULL).
fn op3(v: &Value, op: &str, x: &Value) -> Option<bool> {
    match op {
        "$ne" if x.is_null() => return Some(!v.is_null()),
        "$nin" if x.as_array().unwrap().is_empty() => return Some(true),
        "$in" if x.as_array().unwrap().is_empty() => return Some(false),
        _ if v.is_null() => return None,
        _ => {}
    }
    Some(match op {
        "$like" => like(v.as_str().unwrap(), x.as_str().unwrap()),
        "$contains" => v.as_str().unwrap().contains(x.as_str().unwrap()),
        "$ne" => cmp(v, x) != Ordering::Equal,
        "$gt" => cmp(v, x) == Ordering::Greater,
        "$gte" => cmp(v, x) != Ordering::Less,
        "$lt" => cmp(v, x) == Ordering::Less,
        "$lte" => cmp(v, x) != Ordering::Greater,
        "$in" => x.as_array().unwrap().iter().any(|y| cmp(v, y) == Ordering::Equal),
        "$nin" => !x.as_array().unwrap().iter().any(|y| cmp(v, y) == Ordering::Equal),
        _ => unreachable!(),
    })
}

/// SQL LIKE, case-sensitive, character by character: `%` any run, `_` one character, `\\` escapes.
fn like(s: &str, pattern: &str) -> bool {
    enum T {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '%' => T::Any,
            '_' => T::One,
            '\\' => T::Lit(it.next().unwrap_or('\\')),
            c => T::Lit(c),
        });
    }
    fn m(s: &[char], t: &[T]) -> bool {
        match t.first() {
            None => s.is_empty(),
            Some(T::Any) => (0..=s.len()).any(|i| m(&s[i..], &t[1..])),
            Some(T::One) => !s.is_empty() && m(&s[1..], &t[1..]),
            Some(T::Lit(c)) => s.first() == Some(c) && m(&s[1..], &t[1..]),
        }
    }
    m(&s.chars().collect::<Vec<_>>(), &toks)
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A filter on a row, as SQL decides it.
// `None` is UNKNOWN, which does not end a fold (FALSE AND UNKNOWN is FALSE): `try_fold` would be wrong.
#[allow(clippy::manual_try_fold)]
fn eval(r: &Map<String, Value>, filter: &Map<String, Value>) -> Option<bool> {
    filter.iter().fold(Some(true), |acc, (key, cond)| {
        let one = match (key.as_str(), cond) {
            ("$or", Value::Array(fs)) => fs.iter().fold(Some(false), |a, f| or3(a, eval(r, f.as_object().unwrap()))),
            ("$and", Value::Array(fs)) => fs.iter().fold(Some(true), |a, f| and3(a, eval(r, f.as_object().unwrap()))),
            ("$not", f) => eval(r, f.as_object().unwrap()).map(|b| !b),
            (field, Value::Null) => Some(r[field].is_null()),
            (field, Value::Object(ops)) => ops.iter().fold(Some(true), |a, (op, x)| and3(a, op3(&r[field], op, x))),
            (field, x) => (!r[field].is_null()).then(|| cmp(&r[field], x) == Ordering::Equal),
        };
        and3(acc, one)
    })
}

fn reference(
    rows: &[Map<String, Value>],
    filter: &Map<String, Value>,
    order: &[String],
    limit: Option<u64>,
) -> Vec<i64> {
    let mut out: Vec<&Map<String, Value>> = rows.iter().filter(|r| eval(r, filter) == Some(true)).collect();
    out.sort_by(|a, b| {
        for o in order {
            let (f, desc) = o.strip_prefix('-').map_or((o.as_str(), false), |f| (f, true));
            let c = cmp(&a[f], &b[f]);
            let c = if desc { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c;
            }
        }
        a["id"].as_i64().cmp(&b["id"].as_i64())
    });
    let ids = out.iter().map(|r| r["id"].as_i64().unwrap());
    match limit {
        Some(l) if l > 0 => ids.take(l as usize).collect(),
        _ => ids.collect(),
    }
}

/// A random filter; below `depth` 3 it may nest `$or`, `$and` and `$not` (each part non-empty).
fn random_filter(rng: &mut fastrand::Rng, depth: usize) -> Map<String, Value> {
    let mut f = Map::new();
    if depth < 3 {
        for key in ["$or", "$and", "$not"] {
            if rng.u32(0..5) == 0 {
                let parts = if key == "$not" { 1 } else { rng.usize(1..4) };
                let mut fs: Vec<Value> = (0..parts).map(|_| Value::Object(random_filter(rng, depth + 1))).collect();
                let v = if key == "$not" { fs.remove(0) } else { Value::Array(fs) };
                f.insert(key.to_owned(), v);
            }
        }
    }
    let least = usize::from(depth > 0 && f.is_empty());
    for _ in 0..rng.usize(least..4).max(least) {
        let (field, nullable) = pick(rng, &FIELDS);
        let cond = match rng.u32(0..10) {
            0 if nullable => Value::Null,
            0 | 1 => value(rng, field),
            _ => {
                let mut ops = Map::new();
                for _ in 0..rng.usize(1..3) {
                    let text = matches!(field, "chat_id" | "user_id" | "priority_mode");
                    let op = if text && rng.u32(0..3) == 0 {
                        pick(rng, &["$like", "$contains"])
                    } else {
                        pick(rng, &["$gt", "$gte", "$lt", "$lte", "$ne", "$in", "$nin"])
                    };
                    let x = match op {
                        "$like" => {
                            let toks = ["%", "_", "a", "b", "B", "Ä", "中", "c", "1", "\\%", "\\_", "%a%"];
                            json!((0..rng.usize(1..4)).map(|_| pick(rng, &toks)).collect::<String>())
                        }
                        "$contains" => json!(pick(rng, &["a", "B", "Ä", "中", "c1", "%", "_", "ab"])),
                        "$in" | "$nin" => Value::Array((0..rng.usize(0..4)).map(|_| value(rng, field)).collect()),
                        "$ne" if nullable && rng.u32(0..4) == 0 => Value::Null,
                        _ => value(rng, field),
                    };
                    ops.insert(op.to_owned(), x);
                }
                Value::Object(ops)
            }
        };
        f.insert(field.to_owned(), cond);
    }
    f
}

async fn random_filters_match_the_reference(t: &TestDb) {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut rows = vec![];
    for i in 0..80 {
        let mut data = json!({
            "message_id": format!("m{i}"), "chat_info_stream_id": "s", "chat_info_platform": "qq",
            "chat_info_user_platform": "qq", "chat_info_user_id": "u", "chat_info_user_nickname": "n",
            "chat_info_create_time": 1.0, "chat_info_last_active_time": 1.0,
        });
        for (f, nullable) in FIELDS {
            data[f] = if nullable && rng.u32(0..4) == 0 { Value::Null } else { value(&mut rng, f) };
        }
        rows.push(t.db.create("Messages", &data).await.unwrap());
    }
    for case in 0..600 {
        let filter = random_filter(&mut rng, 0);
        let order: Vec<String> = (0..rng.usize(0..3))
            .map(|_| format!("{}{}", if rng.bool() { "-" } else { "" }, pick(&mut rng, &FIELDS).0))
            .collect();
        let limit = if rng.bool() { Some(rng.u64(0..10)) } else { None };
        // Every other case a page further down (OFFSET).
        let offset = if case % 2 == 1 { rng.u64(0..12) } else { 0 };
        let mut want = reference(&rows, &filter, &order, None);
        want.drain(..(offset as usize).min(want.len()));
        want.truncate(limit.filter(|&l| l > 0).map_or(usize::MAX, |l| l as usize));
        let order_refs: Vec<&str> = order.iter().map(String::as_str).collect();
        let got: Vec<i64> =
            t.db.find_page("Messages", &Value::Object(filter.clone()), &order_refs, limit, offset)
                .await
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
        assert_eq!(
            got,
            want,
            "case {case}: filter {} order {order:?} limit {limit:?} offset {offset}",
            Value::Object(filter)
        );
        // Keyset pages by id of 7 rows cover the same rows in id order.
        if case % 10 == 0 {
            let (mut after, mut paged) = (0, Vec::new());
            loop {
                let page = t.db.find_after("Messages", &Value::Object(filter.clone()), after, 7).await.unwrap();
                paged.extend(page.iter().map(|r| r["id"].as_i64().unwrap()));
                match page.last() {
                    Some(r) if page.len() == 7 => after = r["id"].as_i64().unwrap(),
                    _ => break,
                }
            }
            assert_eq!(paged, reference(&rows, &filter, &["id".into()], None), "keyset, case {case}");
        }
        let n = t.db.count("Messages", &Value::Object(filter.clone())).await.unwrap();
        assert_eq!(n as usize, reference(&rows, &filter, &[], None).len(), "count, case {case}");
    }
    // Patterns one by one, where case, accents, wildcards and escapes decide (the random mix rarely isolates them).
    let patterns = ["b", "B", "%b%", "_", "__", "a%", "%\\%%", "Ä", "ä", "%中", "a_", "\\_", "%"];
    let mut matched = 0;
    for (op, x) in
        patterns.iter().map(|p| ("$like", p)).chain(["b", "B", "ä", "%", "_"].iter().map(|p| ("$contains", p)))
    {
        let filter = json!({"user_id": { op: x }}).as_object().unwrap().clone();
        let want = reference(&rows, &filter, &["id".into()], None);
        let got: Vec<i64> =
            t.db.find("Messages", &Value::Object(filter.clone()), &["id"], None)
                .await
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
        assert_eq!(got, want, "{op} {x}");
        matched += usize::from(!want.is_empty());
    }
    assert!(matched >= 8, "the patterns match some rows: {matched}");
}
