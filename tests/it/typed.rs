//! The typed API over the entities shares the validated paths of the name-based API.

use botdb::Where;
use botdb::entities::{chat_streams, llm_usage, messages};
use botdb::sea_orm::ActiveValue::Set;
use serde_json::json;

use crate::helpers::{TestDb, backend_tests};

backend_tests!(typed_crud);

async fn typed_crud(t: &TestDb) {
    let db = &t.db;
    let am = llm_usage::ActiveModel {
        model_name: Set("gpt".into()),
        model_assign_name: Set("a".into()),
        model_api_provider: Set("p".into()),
        user_id: Set("u".into()),
        request_type: Set("chat".into()),
        endpoint: Set("/v1".into()),
        prompt_tokens: Set(10),
        completion_tokens: Set(5),
        total_tokens: Set(15),
        cost: Set(0.25),
        status: Set("ok".into()),
        ..Default::default()
    };
    let m = db.insert_model(am).await.unwrap();
    assert!(m.id > 0);
    assert_eq!(m.time_cost, None);
    let by_id = db.find_by_id::<llm_usage::Entity>(m.id).await.unwrap().unwrap();
    assert_eq!(by_id, m, "timestamp default round-trips through the entity");
    assert_eq!(db.find_by_id::<llm_usage::Entity>(m.id + 100).await.unwrap(), None);

    for i in 0..5 {
        let row = db
            .create(
                "Messages",
                &json!({"message_id": format!("m{i}"), "time": i as f64, "chat_id": "c",
            "chat_info_stream_id": "c", "chat_info_platform": "qq", "chat_info_user_platform": "qq",
            "chat_info_user_id": "u", "chat_info_user_nickname": "n", "chat_info_create_time": 0.0,
            "chat_info_last_active_time": 0.0}),
            )
            .await
            .unwrap();
        assert_eq!(row["message_id"], json!(format!("m{i}")));
    }
    let w = Where::<messages::Entity>::new()
        .eq(messages::Column::ChatId, "c")
        .lt(messages::Column::Time, 4.0)
        .gte(messages::Column::Time, 1.0)
        .order_desc(messages::Column::Time)
        .limit(2);
    let recent = db.find_where(&w).await.unwrap();
    assert_eq!(recent.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(), ["m3", "m2"]);
    // $or, $not, $like and $contains from the typed builder.
    let w = Where::<messages::Entity>::new()
        .eq(messages::Column::ChatId, "c")
        .or([Where::new().lt(messages::Column::Time, 1.0), Where::new().gt(messages::Column::Time, 2.5)])
        .not(Where::new().eq(messages::Column::MessageId, "m4"))
        .order_asc(messages::Column::Time);
    let ids = |rows: Vec<messages::Model>| rows.into_iter().map(|m| m.message_id).collect::<Vec<_>>();
    assert_eq!(ids(db.find_where(&w).await.unwrap()), ["m0", "m3"]);
    let w = Where::<messages::Entity>::new()
        .like(messages::Column::MessageId, "m_")
        .contains(messages::Column::MessageId, "2")
        .or([Where::new().eq(messages::Column::ChatId, "c")])
        .or([Where::new().gte(messages::Column::Time, 2.0)]);
    assert_eq!(ids(db.find_where(&w).await.unwrap()), ["m2"]);
    assert!(db.find_where(&Where::<messages::Entity>::new().or([])).await.is_err(), "an empty $or is refused");
    let changes = messages::ActiveModel { interest_value: Set(Some(0.5)), ..Default::default() };
    let n = db.update_where(&Where::new().is_in(messages::Column::MessageId, vec!["m1", "m2"]), changes).await.unwrap();
    assert_eq!(n, 2);
    let m1 = db.find_by_key::<messages::Entity>(messages::Column::MessageId, "m1").await.unwrap().unwrap();
    assert_eq!(m1.interest_value, Some(0.5));
    assert_eq!(db.delete_where(&Where::<messages::Entity>::new().gt(messages::Column::Time, 2.5)).await.unwrap(), 2);
    let stream = db.find_by_key::<chat_streams::Entity>(chat_streams::Column::StreamId, "none").await.unwrap();
    assert!(stream.is_none());
    let bad = Where::<messages::Entity>::new().eq(messages::Column::Time, 1.0).gt(messages::Column::Time, 0.0);
    assert!(db.find_where(&bad).await.is_err());
}
