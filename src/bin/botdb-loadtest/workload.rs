//! The simulated bot: a seeded dataset and, per incoming message, the operations the MoFox bot performs
//! (shared/spec/workload.md): key reads of the stream, person and relationship; the message insert; interest
//! and reply-flag updates by message_id; recent history on 30 % of messages; model-call rows; action reads and
//! writes; image counters; on replies (10 %), 1.5 sent segments inserted and their ids rewritten after the
//! platform's echo, and 2.5 model calls. Chats are skewed: 20 % carry 80 % of the messages.

use botdb::{Db, Result};
use serde_json::{Value, json};

/// The dataset's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub chats: usize,
    pub users: usize,
    pub messages_per_chat: usize,
    pub images: usize,
    pub seed: u64,
}

/// The base of simulated time (epoch seconds).
pub(crate) const T0: f64 = 1.75e9;

fn hex(seed: u64, kind: u64, i: usize, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut x = seed ^ kind.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(len);
    out
}

impl Shape {
    pub(crate) fn chat(&self, i: usize) -> String {
        hex(self.seed, 1, i, 64)
    }
    pub(crate) fn person(&self, u: usize) -> String {
        hex(self.seed, 2, u, 32)
    }
    pub(crate) fn user(&self, u: usize) -> String {
        (100_000 + u).to_string()
    }
    pub(crate) fn image(&self, i: usize) -> String {
        hex(self.seed, 3, i, 32)
    }

    /// A chat: 80 % of picks from the hottest 20 %.
    pub(crate) fn pick_chat(&self, rng: &mut fastrand::Rng) -> usize {
        let hot = (self.chats / 5).max(1);
        if rng.f64() < 0.8 { rng.usize(..hot) } else { rng.usize(..self.chats) }
    }
}

pub(crate) fn message(shape: &Shape, id: &str, chat: usize, time: f64, user: usize, rng: &mut fastrand::Rng) -> Value {
    const TEXTS: [&str; 4] = [
        "今天天气不错，我们去公园散步吧",
        "哈哈哈哈 这个表情包太好笑了 😂",
        "Does anyone know how to fix the build on Windows? It fails at linking.",
        "明天晚上八点开会，记得带上笔记本电脑和充电器，别迟到了哦",
    ];
    let text = TEXTS[rng.usize(..TEXTS.len())];
    let c = shape.chat(chat);
    json!({"message_id": id, "time": time, "chat_id": c, "chat_info_stream_id": c, "chat_info_platform": "qq",
        "chat_info_user_platform": "qq", "chat_info_user_id": shape.user(user), "chat_info_user_nickname": format!("user{user}"),
        "chat_info_create_time": T0 - 1e6, "chat_info_last_active_time": time, "user_platform": "qq",
        "user_id": shape.user(user), "user_nickname": format!("user{user}"), "processed_plain_text": text,
        "display_message": text, "key_words": "[]", "priority_mode": "normal"})
}

pub(crate) fn usage(shape: &Shape, user: usize) -> Value {
    json!({"model_name": "deepseek-v3", "model_assign_name": "replyer", "model_api_provider": "siliconflow",
        "user_id": shape.user(user), "request_type": "chat.replyer", "endpoint": "/chat/completions",
        "prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280, "cost": 0.0021, "time_cost": 1.8,
        "status": "success"})
}

pub(crate) fn action(shape: &Shape, chat: usize, action_id: &str, time: f64) -> Value {
    let c = shape.chat(chat);
    json!({"action_id": action_id, "time": time, "action_name": "reply", "action_data": "{\"reply\":\"好的\"}",
        "action_done": true, "action_build_into_prompt": false, "action_prompt_display": "", "chat_id": c,
        "chat_info_stream_id": c, "chat_info_platform": "qq"})
}

async fn insert_all(db: &Db, model: &str, rows: Vec<Value>) -> Result<()> {
    db.insert_many(model, &rows).await.map(drop)
}

/// Writes the dataset (deterministic for a seed).
pub(crate) async fn seed(db: &Db, shape: &Shape) -> Result<()> {
    let mut rng = fastrand::Rng::with_seed(shape.seed);
    let streams = (0..shape.chats)
        .map(|c| json!({"stream_id": shape.chat(c), "create_time": T0 - 1e6, "last_active_time": T0, "platform": "qq",
            "user_platform": "qq", "user_id": shape.user(c % shape.users), "user_nickname": "owner", "group_id": format!("g{c}"),
            "group_name": format!("群聊{c}"), "group_platform": "qq"}))
        .collect();
    insert_all(db, "ChatStreams", streams).await?;
    let people = (0..shape.users)
        .map(|u| json!({"person_id": shape.person(u), "platform": "qq", "user_id": shape.user(u), "nickname": format!("user{u}"),
            "person_name": format!("小{u}"), "impression": "一个经常聊天的朋友", "know_times": 3.0, "know_since": T0 - 1e6, "last_know": T0}))
        .collect();
    insert_all(db, "PersonInfo", people).await?;
    let rels = (0..shape.users)
        .map(|u| {
            json!({"user_id": shape.user(u), "user_name": format!("user{u}"), "relationship_text": "普通朋友",
            "relationship_score": 0.4, "first_met_time": T0 - 1e6})
        })
        .collect();
    insert_all(db, "UserRelationships", rels).await?;
    let expressions = (0..shape.chats * 2)
        .map(|i| {
            json!({"situation": "被夸奖时", "style": "谦虚地说谢谢", "count": 1.0, "last_active_time": T0,
            "chat_id": shape.chat(i % shape.chats), "type": "style", "create_date": T0})
        })
        .collect();
    insert_all(db, "Expression", expressions).await?;
    let mut msgs = Vec::with_capacity(shape.chats * shape.messages_per_chat);
    for c in 0..shape.chats {
        for i in 0..shape.messages_per_chat {
            let user = rng.usize(..shape.users);
            msgs.push(message(shape, &format!("seed-{c}-{i}"), c, T0 - 1e5 + i as f64, user, &mut rng));
        }
    }
    insert_all(db, "Messages", msgs).await?;
    let usages = (0..2000).map(|i| usage(shape, i % shape.users)).collect();
    insert_all(db, "LLMUsage", usages).await?;
    let actions =
        (0..shape.chats * 5).map(|i| action(shape, i % shape.chats, &format!("seed-a{i}"), T0 - 1e4)).collect();
    insert_all(db, "ActionRecords", actions).await?;
    let images = (0..shape.images)
        .map(|i| {
            json!({"image_id": format!("img-{i}"), "emoji_hash": shape.image(i), "description": format!("一张图片{i}"),
            "path": format!("data/images/{i}.png"), "count": 1, "timestamp": T0, "type": "emoji"})
        })
        .collect();
    insert_all(db, "Images", images).await?;
    Ok(())
}

/// The operations, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    ReadStream,
    ReadPerson,
    ReadRelationship,
    ReadExpression,
    RecentHistory,
    ActionsByChat,
    ActionById,
    ImageByHash,
    ImageById,
    StatsScan,
    InsertMessage,
    UpdateMessage,
    RewriteMessageId,
    StreamActivity,
    InsertUsage,
    InsertAction,
    IncrementImage,
}

impl Op {
    pub(crate) const ALL: [Op; 17] = [
        Op::ReadStream,
        Op::ReadPerson,
        Op::ReadRelationship,
        Op::ReadExpression,
        Op::RecentHistory,
        Op::ActionsByChat,
        Op::ActionById,
        Op::ImageByHash,
        Op::ImageById,
        Op::StatsScan,
        Op::InsertMessage,
        Op::UpdateMessage,
        Op::RewriteMessageId,
        Op::StreamActivity,
        Op::InsertUsage,
        Op::InsertAction,
        Op::IncrementImage,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::ReadStream => "read_stream",
            Op::ReadPerson => "read_person",
            Op::ReadRelationship => "read_relationship",
            Op::ReadExpression => "read_expression",
            Op::RecentHistory => "recent_history",
            Op::ActionsByChat => "actions_by_chat",
            Op::ActionById => "action_by_id",
            Op::ImageByHash => "image_by_hash",
            Op::ImageById => "image_by_id",
            Op::StatsScan => "stats_scan",
            Op::InsertMessage => "insert_message",
            Op::UpdateMessage => "update_message",
            Op::RewriteMessageId => "rewrite_message_id",
            Op::StreamActivity => "stream_activity",
            Op::InsertUsage => "insert_usage",
            Op::InsertAction => "insert_action",
            Op::IncrementImage => "increment_image",
        }
    }

    pub(crate) fn is_write(self) -> bool {
        matches!(
            self,
            Op::InsertMessage
                | Op::UpdateMessage
                | Op::RewriteMessageId
                | Op::StreamActivity
                | Op::InsertUsage
                | Op::InsertAction
                | Op::IncrementImage
        )
    }
}

/// One operation with its arguments.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    ReadStream(String),
    ReadPerson(String),
    ReadRelationship(String),
    ReadExpression(String),
    RecentHistory(String, f64),
    ActionsByChat(String, f64),
    ActionById(String),
    ImageByHash(String),
    ImageById(String),
    StatsScan(f64),
    InsertMessage(Value),
    UpdateMessage(String, f64),
    RewriteMessageId(String, String),
    StreamActivity(String, f64),
    InsertUsage(Value),
    InsertAction(Value),
    IncrementImage(String),
}

impl Call {
    /// What a read asks for, for the repeat hit ratio: the operation and its key (a chat's history is one
    /// key whatever its moving bound); `None` for writes and the statistics scan.
    pub(crate) fn read_key(&self) -> Option<String> {
        let key = match self {
            Call::ReadStream(k)
            | Call::ReadPerson(k)
            | Call::ReadRelationship(k)
            | Call::ReadExpression(k)
            | Call::RecentHistory(k, _)
            | Call::ActionsByChat(k, _)
            | Call::ActionById(k)
            | Call::ImageByHash(k)
            | Call::ImageById(k) => k,
            _ => return None,
        };
        Some(format!("{}:{key}", self.op().name()))
    }

    pub(crate) fn op(&self) -> Op {
        match self {
            Call::ReadStream(_) => Op::ReadStream,
            Call::ReadPerson(_) => Op::ReadPerson,
            Call::ReadRelationship(_) => Op::ReadRelationship,
            Call::ReadExpression(_) => Op::ReadExpression,
            Call::RecentHistory(..) => Op::RecentHistory,
            Call::ActionsByChat(..) => Op::ActionsByChat,
            Call::ActionById(_) => Op::ActionById,
            Call::ImageByHash(_) => Op::ImageByHash,
            Call::ImageById(_) => Op::ImageById,
            Call::StatsScan(_) => Op::StatsScan,
            Call::InsertMessage(_) => Op::InsertMessage,
            Call::UpdateMessage(..) => Op::UpdateMessage,
            Call::RewriteMessageId(..) => Op::RewriteMessageId,
            Call::StreamActivity(..) => Op::StreamActivity,
            Call::InsertUsage(_) => Op::InsertUsage,
            Call::InsertAction(_) => Op::InsertAction,
            Call::IncrementImage(_) => Op::IncrementImage,
        }
    }
}

/// The calls of one incoming message, in the bot's order (the reply path reads the history right after the
/// message was written, and must see it).
pub(crate) fn flow(shape: &Shape, n: u64, now: f64, rng: &mut fastrand::Rng) -> (Vec<Call>, String, String) {
    let chat = shape.pick_chat(rng);
    // A chat's messages come from its members (40 per chat), as in a real group.
    let user = (chat * 37 + rng.usize(..40)) % shape.users;
    let c = shape.chat(chat);
    let id = format!("m{}-{n}", shape.seed);
    let mut calls = vec![
        Call::ReadStream(c.clone()),
        Call::ReadPerson(shape.person(user)),
        Call::ReadRelationship(shape.user(user)),
        Call::InsertMessage(message(shape, &id, chat, now, user, rng)),
    ];
    if rng.f64() < 0.1 {
        calls.push(Call::StreamActivity(c.clone(), now));
    }
    calls.push(Call::UpdateMessage(id.clone(), rng.f64()));
    calls.push(Call::UpdateMessage(id.clone(), 1.0));
    if rng.f64() < 0.3 {
        calls.push(Call::RecentHistory(c.clone(), now + 1e-3));
    }
    if rng.f64() < 0.3 {
        calls.push(Call::InsertUsage(usage(shape, user)));
    }
    if rng.f64() < 0.2 {
        calls.push(Call::ActionsByChat(c.clone(), now - 3600.0));
    }
    if rng.f64() < 0.15 {
        let h = shape.image(rng.usize(..shape.images));
        calls.push(Call::ImageByHash(h.clone()));
        calls.push(Call::IncrementImage(h));
    }
    if rng.f64() < 0.1 {
        calls.push(Call::ImageById(format!("img-{}", rng.usize(..shape.images))));
    }
    if rng.f64() < 0.1 {
        let aid = format!("a{}-{n}", shape.seed);
        calls.push(Call::ActionById(aid.clone()));
        calls.push(Call::InsertAction(action(shape, chat, &aid, now)));
        calls.push(Call::ReadExpression(c.clone()));
        for seg in 0..(1 + (n % 2)) {
            let tmp = format!("{id}-s{seg}");
            calls.push(Call::InsertMessage(message(shape, &tmp, chat, now + 0.5, 0, rng)));
            calls.push(Call::RewriteMessageId(tmp, format!("{id}-echo{seg}")));
        }
        for _ in 0..(2 + (n % 2)) {
            calls.push(Call::InsertUsage(usage(shape, user)));
        }
    }
    (calls, c, id)
}
