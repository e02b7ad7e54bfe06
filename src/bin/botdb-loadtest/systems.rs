//! The two systems under test: botdb's name-based API, and the baseline a user would otherwise write —
//! plain sea-orm, one call per operation, no cache, no batching, on a pool of the same size with the same
//! durability settings.

use botdb::entities::{
    action_records, chat_streams, expression, images, llm_usage, messages, person_info, user_relationships,
};
use botdb::sea_orm::sea_query::{Expr, ExprTrait};
use botdb::sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    ModelTrait, QueryFilter, QueryOrder, QuerySelect,
};
use botdb::{Db, Error};
use serde_json::{Value, json};

use crate::workload::Call;

/// A system under test.
#[derive(Clone)]
pub(crate) enum System {
    /// botdb: cache, batch scheduler, name-based API.
    Botdb(Db),
    /// Plain sea-orm on a pool.
    Baseline(DatabaseConnection),
}

impl System {
    /// The handle one message's handler uses: for botdb a session (its reads see its own pending writes
    /// and wait for nobody else's), as the bot would use it.
    /// botdb: how many of this handle's reads went to the database (a session counts its own).
    pub(crate) fn loads(&self) -> Option<u64> {
        match self {
            System::Botdb(db) => Some(db.session_loads()),
            System::Baseline(_) => None,
        }
    }

    pub(crate) fn for_message(&self) -> System {
        match self {
            System::Botdb(db) => System::Botdb(db.session()),
            System::Baseline(c) => System::Baseline(c.clone()),
        }
    }

    /// Queues a write of botdb and returns its ticket; `None` for a read, or for the baseline (which has
    /// no ticket: its calls are awaited one by one).
    pub(crate) async fn submit(&self, call: &Call) -> Result<Option<botdb::Ticket>, String> {
        let System::Botdb(db) = self else { return Ok(None) };
        let t = match botdb_write(call) {
            Some(Write::Create(model, data)) => db.submit_create(model, &data).await,
            Some(Write::Update(model, filter, data)) => db.submit_update(model, &filter, &data).await,
            Some(Write::Increment(model, filter, field)) => db.submit_increment(model, &filter, field, &json!(1)).await,
            None => return Ok(None),
        };
        t.map(Some).map_err(|e| e.to_string())
    }

    /// Runs one call and waits for it (a write: for its commit, through botdb's awaited API); the error is
    /// reported, never hidden. Answers the id of a row botdb created.
    pub(crate) async fn run(&self, call: &Call) -> Result<Option<i64>, String> {
        let fail = |e: Error| e.to_string();
        match self {
            System::Botdb(db) => match botdb_write(call) {
                Some(Write::Create(model, data)) => db.create(model, &data).await.map(|r| row_id(&r)).map_err(fail),
                Some(Write::Update(model, filter, data)) => {
                    db.update(model, &filter, &data).await.map(|_| None).map_err(fail)
                }
                Some(Write::Increment(model, filter, field)) => {
                    db.increment(model, &filter, field, &json!(1)).await.map(|_| None).map_err(fail)
                }
                None => botdb_call(db, call).await.map(|()| None).map_err(fail),
            },
            System::Baseline(conn) => baseline_call(conn, call).await.map(|()| None).map_err(|e| e.to_string()),
        }
    }
}

/// The id of a row botdb answered.
pub(crate) fn row_id(row: &botdb::Row) -> Option<i64> {
    row.get("id").and_then(Value::as_i64)
}

/// Rows per page of the statistics scan.
const STATS_PAGE: u64 = 2000;

/// The baseline's statistics scan of one table: every row matching `cond`, in keyset pages by id.
async fn scan_by_id<E: EntityTrait, C: ConnectionTrait>(
    conn: &C,
    id: E::Column,
    cond: Condition,
) -> Result<(), botdb::sea_orm::DbErr> {
    let mut after = 0i32;
    loop {
        let page =
            E::find().filter(cond.clone()).filter(id.gt(after)).order_by_asc(id).limit(STATS_PAGE).all(conn).await?;
        match page.last().map(|r| r.get(id)) {
            Some(botdb::sea_orm::Value::Int(Some(last))) if page.len() as u64 == STATS_PAGE => after = last,
            _ => return Ok(()),
        }
    }
}

/// A write of the workload, as botdb's name-based API takes it.
pub(crate) enum Write<'c> {
    Create(&'static str, std::borrow::Cow<'c, Value>),
    Update(&'static str, Value, Value),
    Increment(&'static str, Value, &'static str),
}

pub(crate) fn botdb_write(call: &Call) -> Option<Write<'_>> {
    use std::borrow::Cow::Borrowed;
    Some(match call {
        Call::InsertMessage(m) => Write::Create("Messages", Borrowed(m)),
        Call::InsertUsage(u) => Write::Create("LLMUsage", Borrowed(u)),
        Call::InsertAction(a) => Write::Create("ActionRecords", Borrowed(a)),
        Call::UpdateMessage(id, v) => {
            Write::Update("Messages", json!({"message_id": id}), json!({"interest_value": v, "should_reply": *v > 0.9}))
        }
        Call::RewriteMessageId(old, new) => {
            Write::Update("Messages", json!({"message_id": old}), json!({"message_id": new}))
        }
        Call::StreamActivity(c, t) => {
            Write::Update("ChatStreams", json!({"stream_id": c}), json!({"last_active_time": t}))
        }
        Call::IncrementImage(h) => Write::Increment("Images", json!({"emoji_hash": h}), "count"),
        _ => return None,
    })
}

async fn botdb_call(db: &Db, call: &Call) -> Result<(), Error> {
    match call {
        Call::ReadStream(c) => drop(db.find_one("ChatStreams", &json!({"stream_id": c}), &[]).await?),
        Call::ReadPerson(p) => drop(db.find_one("PersonInfo", &json!({"person_id": p}), &[]).await?),
        Call::ReadRelationship(u) => drop(db.find_one("UserRelationships", &json!({"user_id": u}), &[]).await?),
        Call::ReadExpression(c) => drop(db.find("Expression", &json!({"chat_id": c}), &[], None).await?),
        Call::RecentHistory(c, t) => {
            drop(db.find("Messages", &json!({"chat_id": c, "time": {"$lt": t}}), &["-time"], Some(8)).await?)
        }
        Call::ActionsByChat(c, since) => {
            drop(db.find("ActionRecords", &json!({"chat_id": c, "time": {"$gte": since}}), &["-time"], None).await?)
        }
        Call::ActionById(a) => drop(db.find_one("ActionRecords", &json!({"action_id": a}), &[]).await?),
        Call::ImageByHash(h) => drop(db.find_one("Images", &json!({"emoji_hash": h}), &[]).await?),
        Call::ImageById(i) => drop(db.find_one("Images", &json!({"image_id": i}), &[]).await?),
        // The statistics job reads whole tables in keyset pages of 2,000 rows (the bot's `iter_batches`).
        Call::StatsScan(since) => {
            for (model, filter) in [("LLMUsage", json!({})), ("Messages", json!({"time": {"$gte": since}}))] {
                let mut after = 0;
                loop {
                    let page = db.find_after(model, &filter, after, STATS_PAGE).await?;
                    match page.last().and_then(|r| r["id"].as_i64()) {
                        Some(id) if page.len() as u64 == STATS_PAGE => after = id,
                        _ => break,
                    }
                }
            }
        }
        // Writes go through `System::submit` (queued, then their tickets awaited).
        other => return Err(Error::InvalidRequest(format!("{} is a write: submit it", other.op().name()))),
    }
    Ok(())
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_default()
}

/// One call as plain sea-orm makes it (also the ceiling's statements, inside its transactions).
pub(crate) async fn baseline_call<C: ConnectionTrait>(conn: &C, call: &Call) -> Result<(), botdb::sea_orm::DbErr> {
    match call {
        Call::ReadStream(c) => {
            drop(chat_streams::Entity::find().filter(chat_streams::Column::StreamId.eq(c)).one(conn).await?)
        }
        Call::ReadPerson(p) => {
            drop(person_info::Entity::find().filter(person_info::Column::PersonId.eq(p)).one(conn).await?)
        }
        Call::ReadRelationship(u) => {
            drop(user_relationships::Entity::find().filter(user_relationships::Column::UserId.eq(u)).one(conn).await?)
        }
        Call::ReadExpression(c) => {
            drop(expression::Entity::find().filter(expression::Column::ChatId.eq(c)).all(conn).await?)
        }
        Call::RecentHistory(c, t) => drop(
            messages::Entity::find()
                .filter(messages::Column::ChatId.eq(c))
                .filter(messages::Column::Time.lt(*t))
                .order_by_desc(messages::Column::Time)
                .limit(8)
                .all(conn)
                .await?,
        ),
        Call::ActionsByChat(c, since) => drop(
            action_records::Entity::find()
                .filter(action_records::Column::ChatId.eq(c))
                .filter(action_records::Column::Time.gte(*since))
                .order_by_desc(action_records::Column::Time)
                .all(conn)
                .await?,
        ),
        Call::ActionById(a) => {
            drop(action_records::Entity::find().filter(action_records::Column::ActionId.eq(a)).one(conn).await?)
        }
        Call::ImageByHash(h) => drop(images::Entity::find().filter(images::Column::EmojiHash.eq(h)).one(conn).await?),
        Call::ImageById(i) => drop(images::Entity::find().filter(images::Column::ImageId.eq(i)).one(conn).await?),
        Call::StatsScan(since) => {
            scan_by_id::<llm_usage::Entity, _>(conn, llm_usage::Column::Id, Condition::all()).await?;
            let recent = Condition::all().add(messages::Column::Time.gte(*since));
            scan_by_id::<messages::Entity, _>(conn, messages::Column::Id, recent).await?;
        }
        Call::InsertMessage(m) => {
            let am = messages::ActiveModel {
                message_id: Set(s(m, "message_id")),
                time: Set(f(m, "time")),
                chat_id: Set(s(m, "chat_id")),
                chat_info_stream_id: Set(s(m, "chat_info_stream_id")),
                chat_info_platform: Set(s(m, "chat_info_platform")),
                chat_info_user_platform: Set(s(m, "chat_info_user_platform")),
                chat_info_user_id: Set(s(m, "chat_info_user_id")),
                chat_info_user_nickname: Set(s(m, "chat_info_user_nickname")),
                chat_info_create_time: Set(f(m, "chat_info_create_time")),
                chat_info_last_active_time: Set(f(m, "chat_info_last_active_time")),
                user_platform: Set(Some(s(m, "user_platform"))),
                user_id: Set(Some(s(m, "user_id"))),
                user_nickname: Set(Some(s(m, "user_nickname"))),
                processed_plain_text: Set(Some(s(m, "processed_plain_text"))),
                display_message: Set(Some(s(m, "display_message"))),
                key_words: Set(Some(s(m, "key_words"))),
                priority_mode: Set(Some(s(m, "priority_mode"))),
                memorized_times: Set(0),
                is_emoji: Set(false),
                is_picid: Set(false),
                is_command: Set(false),
                is_notify: Set(false),
                is_public_notice: Set(false),
                should_reply: Set(Some(false)),
                should_act: Set(Some(false)),
                ..Default::default()
            };
            am.insert(conn).await?;
        }
        Call::UpdateMessage(id, v) => {
            messages::Entity::update_many()
                .col_expr(messages::Column::InterestValue, Expr::value(*v))
                .col_expr(messages::Column::ShouldReply, Expr::value(*v > 0.9))
                .filter(messages::Column::MessageId.eq(id))
                .exec(conn)
                .await?;
        }
        Call::RewriteMessageId(old, new) => {
            messages::Entity::update_many()
                .col_expr(messages::Column::MessageId, Expr::value(new.clone()))
                .filter(messages::Column::MessageId.eq(old))
                .exec(conn)
                .await?;
        }
        Call::StreamActivity(c, t) => {
            chat_streams::Entity::update_many()
                .col_expr(chat_streams::Column::LastActiveTime, Expr::value(*t))
                .filter(chat_streams::Column::StreamId.eq(c))
                .exec(conn)
                .await?;
        }
        Call::InsertUsage(u) => {
            let am = llm_usage::ActiveModel {
                model_name: Set(s(u, "model_name")),
                model_assign_name: Set(s(u, "model_assign_name")),
                model_api_provider: Set(s(u, "model_api_provider")),
                user_id: Set(s(u, "user_id")),
                request_type: Set(s(u, "request_type")),
                endpoint: Set(s(u, "endpoint")),
                prompt_tokens: Set(1200),
                completion_tokens: Set(80),
                total_tokens: Set(1280),
                cost: Set(f(u, "cost")),
                time_cost: Set(Some(f(u, "time_cost"))),
                status: Set(s(u, "status")),
                timestamp: Set(chrono::Local::now().naive_local()),
                ..Default::default()
            };
            am.insert(conn).await?;
        }
        Call::InsertAction(a) => {
            let am = action_records::ActiveModel {
                action_id: Set(s(a, "action_id")),
                time: Set(f(a, "time")),
                action_name: Set(s(a, "action_name")),
                action_data: Set(s(a, "action_data")),
                action_done: Set(true),
                action_build_into_prompt: Set(false),
                action_prompt_display: Set(String::new()),
                chat_id: Set(s(a, "chat_id")),
                chat_info_stream_id: Set(s(a, "chat_info_stream_id")),
                chat_info_platform: Set(s(a, "chat_info_platform")),
                ..Default::default()
            };
            am.insert(conn).await?;
        }
        Call::IncrementImage(h) => {
            images::Entity::update_many()
                .col_expr(images::Column::Count, Expr::col(images::Column::Count).add(1))
                .filter(images::Column::EmojiHash.eq(h))
                .exec(conn)
                .await?;
        }
    }
    Ok(())
}
