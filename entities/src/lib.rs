//! sea-orm entities of the chat bot's 25 tables, one module per table, generated from
//! `docs/schema.md` by `scripts/gen_schema.py`. Data only: no logic lives here.
//!
//! Column types: `INTEGER` is `i32` (PostgreSQL `INTEGER`), `FLOAT` is `f64` (double precision on every
//! backend), `DATETIME` is a naive local [`sea_orm::prelude::DateTime`], nullable columns are `Option`.

pub use sea_orm;

pub mod action_records;
pub mod anti_injection_stats;
pub mod ban_users;
pub mod bot_personality_interests;
pub mod cache_entries;
pub mod chat_streams;
pub mod emoji;
pub mod expression;
pub mod graph_edges;
pub mod graph_nodes;
pub mod image_descriptions;
pub mod images;
pub mod llm_usage;
pub mod maizone_schedule_status;
pub mod memory;
pub mod messages;
pub mod monthly_plans;
pub mod online_time;
pub mod permission_nodes;
pub mod person_info;
pub mod schedule;
pub mod thinking_logs;
pub mod user_permissions;
pub mod user_relationships;
pub mod videos;

/// Every entity's table name, in the order of the model mapping.
pub const TABLES: [&str; 25] = [
    "chat_streams",
    "llm_usage",
    "emoji",
    "messages",
    "action_records",
    "images",
    "image_descriptions",
    "videos",
    "online_time",
    "person_info",
    "bot_personality_interests",
    "memory",
    "expression",
    "thinking_logs",
    "graph_nodes",
    "graph_edges",
    "schedule",
    "maizone_schedule_status",
    "ban_users",
    "anti_injection_stats",
    "cache_entries",
    "monthly_plans",
    "permission_nodes",
    "user_permissions",
    "user_relationships",
];
