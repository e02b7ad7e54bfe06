//! Layer 3, api: what callers use. The `Db` handle; typed CRUD over the entities; the name-based CRUD over
//! model names and JSON; the compatibility facade of the bot's plugins, a thin skin over the name-based API.

pub(crate) mod bulk;
pub mod compat;
pub(crate) mod db;
pub(crate) mod deferred;
pub(crate) mod named;
pub(crate) mod transaction;
pub(crate) mod transfer;
pub(crate) mod typed;
