//! Explicit transactions on every backend: concurrent read-modify-writes of one row lose no update, a
//! transaction that fails half way leaves nothing behind, its own writes are visible inside, and the cache
//! serves what it committed.

use botdb::Error;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{TestDb, backend_tests};

backend_tests!(transactions_read_modify_write);

async fn transactions_read_modify_write(t: &TestDb) {
    let db = &t.db;
    db.create("PersonInfo", &json!({"person_id": "p1", "platform": "qq", "user_id": "1", "know_times": 0.0}))
        .await
        .unwrap();
    let cached = || async {
        db.find_one("PersonInfo", &json!({"person_id": "p1"}), &[]).await.unwrap().unwrap()["know_times"].clone()
    };
    assert_eq!(cached().await, json!(0.0));
    // Eight concurrent read-modify-writes of one counter: none lost.
    let bumps = (0..8).map(|_| {
        db.transaction(|tx| {
            Box::pin(async move {
                let row = tx.find_one("PersonInfo", &json!({"person_id": "p1"})).await?.expect("the row");
                let n = row["know_times"].as_f64().unwrap_or(0.0) + 1.0;
                tx.update("PersonInfo", &json!({"person_id": "p1"}), &json!({"know_times": n})).await?;
                Ok(n)
            })
        })
    });
    let mut seen: Vec<f64> = join_all(bumps).await.into_iter().map(Result::unwrap).collect();
    seen.sort_by(f64::total_cmp);
    assert_eq!(seen, (1..=8).map(f64::from).collect::<Vec<_>>(), "each saw the one before it");
    assert_eq!(cached().await, json!(8.0), "the cache serves the committed value");

    // Half way and failing: nothing of it stays; its own write was visible inside.
    let e = db
        .transaction(|tx| {
            Box::pin(async move {
                tx.create("PersonInfo", &json!({"person_id": "p2", "platform": "qq", "user_id": "2"})).await?;
                let inside = tx.find_one("PersonInfo", &json!({"person_id": "p2"})).await?;
                assert!(inside.is_some(), "the transaction sees its own insert");
                tx.update("PersonInfo", &json!({"person_id": "p1"}), &json!({"know_times": 100.0})).await?;
                Err::<(), _>(Error::InvalidRequest("changed my mind".into()))
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::InvalidRequest(m) if m == "changed my mind"), "{e}");
    assert!(db.find_one("PersonInfo", &json!({"person_id": "p2"}), &[]).await.unwrap().is_none());
    assert_eq!(cached().await, json!(8.0));
    assert_eq!(db.count("PersonInfo", &json!({})).await.unwrap(), 1);
    // Validation inside is the same as outside.
    let e = db
        .transaction(|tx| Box::pin(async move { tx.update("PersonInfo", &json!({"nope": 1}), &json!({})).await }))
        .await;
    assert!(matches!(e, Err(Error::UnknownField { .. })), "{e:?}");
}
