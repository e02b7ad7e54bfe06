//! A model check: random operations through botdb (cache on, a session's pipelined writes and awaited ones)
//! against an in-memory model of the two hot shapes, a row by unique key (`PersonInfo`) and a chat's recent
//! history (`Messages`), and a nested (`$or`/`$not`) filter. The model applies each write when it is submitted; every read must answer exactly
//! what the model holds then (the caller's own pending writes included), and every acknowledgement must
//! report what the model says the write matched. Seeded (`BOTDB_MODEL_SEED` replays one seed).

use std::collections::BTreeMap;

use botdb::{Db, Ticket};
use serde_json::{Value, json};

use crate::helpers::{TestDb, backend_tests};

backend_tests!(random_operations_match_the_model);

#[derive(Default)]
struct Model {
    /// person_id → (nickname, know_times)
    people: BTreeMap<String, (String, i64)>,
    /// message_id → (chat, time, interest_value)
    messages: BTreeMap<String, (String, f64, f64)>,
}

impl Model {
    fn history(&self, chat: &str, before: f64, limit: usize) -> Vec<(String, f64)> {
        let mut rows: Vec<(&String, &(String, f64, f64))> =
            self.messages.iter().filter(|(_, (c, t, _))| c == chat && *t < before).collect();
        rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        rows.into_iter().take(limit).map(|(id, (_, _, v))| (id.clone(), *v)).collect()
    }
}

fn message(id: &str, chat: &str, time: f64, interest: f64) -> Value {
    json!({"message_id": id, "time": time, "chat_id": chat, "chat_info_stream_id": chat, "chat_info_platform": "qq",
        "chat_info_user_platform": "qq", "chat_info_user_id": "u", "chat_info_user_nickname": "n",
        "chat_info_create_time": 1.0, "chat_info_last_active_time": time, "interest_value": interest})
}

/// A write submitted through the session, and what the model says it matched (`None`: a create).
type Pending = (Ticket, Option<u64>, String);

async fn settle(pending: &mut Vec<Pending>) {
    for (ticket, expect, what) in pending.drain(..) {
        let outcome = ticket.await.unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Some(n) = expect {
            assert_eq!(outcome, botdb::WriteOutcome::Count(n), "{what}");
        }
    }
}

async fn random_operations_match_the_model(t: &TestDb) {
    let seed = std::env::var("BOTDB_MODEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut m = Model::default();
    let chats = ["c0", "c1", "c2"];
    let (mut next_person, mut next_message, mut clock) = (0u32, 0u32, 1_000.0f64);
    for message_no in 0..150 {
        // One handler: a session, its writes pipelined or awaited, every ticket settled at the end.
        let s: Db = t.db.session();
        let pipelined = rng.bool();
        let mut pending: Vec<Pending> = Vec::new();
        for op_no in 0..8 {
            let what = format!("seed {seed}, message {message_no}, op {op_no}");
            let person = format!("p{}", rng.u32(..next_person.max(1) + 2));
            let chat = chats[rng.usize(..chats.len())];
            match rng.u8(..10) {
                0 => {
                    let id = format!("p{next_person}");
                    next_person += 1;
                    let data =
                        json!({"person_id": id, "platform": "qq", "user_id": id, "nickname": "new", "know_times": 0});
                    m.people.insert(id, ("new".into(), 0));
                    if pipelined {
                        pending.push((s.submit_create("PersonInfo", &data).await.unwrap(), None, what));
                    } else {
                        s.create("PersonInfo", &data).await.unwrap();
                    }
                }
                1 | 2 => {
                    let nick = format!("n{}", rng.u8(..4));
                    let matched = m.people.get_mut(&person).map(|p| p.0 = nick.clone()).is_some() as u64;
                    let (f, d) = (json!({"person_id": person}), json!({"nickname": nick}));
                    if pipelined {
                        pending.push((s.submit_update("PersonInfo", &f, &d).await.unwrap(), Some(matched), what));
                    } else {
                        assert_eq!(s.update("PersonInfo", &f, &d).await.unwrap(), matched, "{what}");
                    }
                }
                3 => {
                    let matched = m.people.get_mut(&person).map(|p| p.1 += 1).is_some() as u64;
                    let f = json!({"person_id": person});
                    if pipelined {
                        let ticket = s.submit_increment("PersonInfo", &f, "know_times", &json!(1)).await.unwrap();
                        pending.push((ticket, Some(matched), what));
                    } else {
                        assert_eq!(
                            s.increment("PersonInfo", &f, "know_times", &json!(1)).await.unwrap(),
                            matched,
                            "{what}"
                        );
                    }
                }
                4 => {
                    let matched = m.people.remove(&person).is_some() as u64;
                    let f = json!({"person_id": person});
                    if pipelined {
                        pending.push((s.submit_delete("PersonInfo", &f).await.unwrap(), Some(matched), what));
                    } else {
                        assert_eq!(s.delete("PersonInfo", &f).await.unwrap(), matched, "{what}");
                    }
                }
                5 if rng.bool() => {
                    // A nested filter: answered by the database after the session's own pending writes.
                    let nick = format!("n{}", rng.u8(..4));
                    let f = json!({"$or": [{"person_id": person}, {"$not": {"nickname": {"$ne": nick}}}]});
                    let rows = s.find("PersonInfo", &f, &["person_id"], None).await.unwrap();
                    let got: Vec<String> =
                        rows.iter().map(|r| r["person_id"].as_str().unwrap_or("").to_owned()).collect();
                    let want: Vec<String> = m
                        .people
                        .iter()
                        .filter(|(id, p)| **id == person || p.0 == nick)
                        .map(|(id, _)| id.clone())
                        .collect();
                    assert_eq!(got, want, "{what}: people {person} or named {nick}");
                }
                5 => {
                    let got = s.find_one("PersonInfo", &json!({"person_id": person}), &[]).await.unwrap();
                    let got = got.map(|r| {
                        (
                            r["nickname"].as_str().unwrap_or("").to_owned(),
                            r["know_times"].as_f64().unwrap_or(-1.0) as i64,
                        )
                    });
                    assert_eq!(got, m.people.get(&person).cloned(), "{what}: person {person}");
                }
                6 | 7 => {
                    let id = format!("m{next_message}");
                    next_message += 1;
                    clock += 1.0;
                    let interest = f64::from(rng.u8(..4)) / 4.0;
                    m.messages.insert(id.clone(), (chat.into(), clock, interest));
                    let data = message(&id, chat, clock, interest);
                    if pipelined {
                        pending.push((s.submit_create("Messages", &data).await.unwrap(), None, what));
                    } else {
                        s.create("Messages", &data).await.unwrap();
                    }
                }
                8 => {
                    let id = format!("m{}", rng.u32(..next_message.max(1) + 1));
                    let v = f64::from(rng.u8(..4)) / 4.0;
                    let matched = m.messages.get_mut(&id).map(|r| r.2 = v).is_some() as u64;
                    let (f, d) = (json!({"message_id": id}), json!({"interest_value": v}));
                    if rng.u8(..4) == 0 {
                        let matched = m.messages.remove(&id).is_some() as u64;
                        if pipelined {
                            pending.push((s.submit_delete("Messages", &f).await.unwrap(), Some(matched), what));
                        } else {
                            assert_eq!(s.delete("Messages", &f).await.unwrap(), matched, "{what}");
                        }
                    } else if pipelined {
                        pending.push((s.submit_update("Messages", &f, &d).await.unwrap(), Some(matched), what));
                    } else {
                        assert_eq!(s.update("Messages", &f, &d).await.unwrap(), matched, "{what}");
                    }
                }
                _ => {
                    let (before, limit) = (clock + 0.5 - f64::from(rng.u8(..3)), 1 + rng.usize(..8));
                    let f = json!({"chat_id": chat, "time": {"$lt": before}});
                    // Sometimes a page further down (answered by the database, after the session's writes).
                    let offset = if rng.u8(..3) == 0 { rng.usize(..4) } else { 0 };
                    let rows =
                        s.find_page("Messages", &f, &["-time"], Some(limit as u64), offset as u64).await.unwrap();
                    let got: Vec<(String, f64)> = rows
                        .iter()
                        .map(|r| {
                            (
                                r["message_id"].as_str().unwrap_or("").to_owned(),
                                r["interest_value"].as_f64().unwrap_or(-1.0),
                            )
                        })
                        .collect();
                    let want: Vec<(String, f64)> =
                        m.history(chat, before, offset + limit).into_iter().skip(offset).collect();
                    assert_eq!(got, want, "{what}: history of {chat} before {before} from {offset}");
                }
            }
        }
        settle(&mut pending).await;
    }
    // At the end, the counts agree too.
    t.db.flush().await;
    let people = t.db.count("PersonInfo", &Value::Null).await.unwrap();
    let messages = t.db.count("Messages", &Value::Null).await.unwrap();
    assert_eq!((people, messages), (m.people.len() as u64, m.messages.len() as u64));
}
