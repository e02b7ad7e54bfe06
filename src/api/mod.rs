//! Layer 3, api: what callers use. The `Db` handle; typed CRUD over the entities; the name-based CRUD over
//! model names and JSON; the compatibility facade of the bot's plugins, a thin skin over the name-based API.

pub mod compat;
pub mod db;
pub mod deferred;
pub mod named;
pub mod typed;
