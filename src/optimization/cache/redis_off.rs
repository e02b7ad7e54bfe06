//! The Redis tier in a build without the `redis` feature: a type with no values, so a cache never holds
//! one, and asking for Redis in the settings is a configuration error (never a silent fallback).

use std::time::Duration;

use crate::config::RedisSettings;
use crate::core::registry::ModelDef;
use crate::core::value::Row;
use crate::utils::error::{Error, Result};

use super::generations::Field;

/// No Redis tier can exist in this build.
#[derive(Debug)]
pub(crate) enum RedisTier {}

impl RedisTier {
    /// Always [`Error::Config`]: this build has no Redis client.
    pub(crate) fn new(_settings: &RedisSettings, _url: &str) -> Result<RedisTier> {
        Err(Error::Config("cache.redis.url is set, but botdb was built without its `redis` feature".into()))
    }

    pub(crate) fn state(&self) -> super::stats::PartState {
        match *self {}
    }

    pub(crate) fn usable(&self) -> bool {
        match *self {}
    }

    pub(crate) fn reachable(&self) -> bool {
        match *self {}
    }

    pub(crate) fn mark_desynced(&self) {
        match *self {}
    }

    pub(crate) fn error_count(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn key(&self, _model: &ModelDef, _all: u64, _scope: (Field, u64), _hash: u128) -> String {
        match *self {}
    }

    pub(crate) async fn get(&self, _key: &str) -> Option<std::result::Result<Vec<Row>, ()>> {
        match *self {}
    }

    pub(crate) async fn set(&self, _key: &str, _rows: &[std::sync::Arc<Row>], _ttl: Duration) {
        match *self {}
    }

    pub(crate) async fn bump(&self, _model: &ModelDef, _model_idx: usize, _fields: &[Field]) -> Option<Vec<u64>> {
        match *self {}
    }

    pub(crate) async fn bump_many(&self, _items: &[(&ModelDef, usize, Vec<Field>)]) -> Option<Vec<Vec<u64>>> {
        match *self {}
    }

    pub(crate) async fn fetch_stats(&self, _keep: std::time::Duration) -> Option<Vec<serde_json::Value>> {
        match *self {}
    }

    pub(crate) async fn publish_flush(&self) -> Option<u64> {
        match *self {}
    }
}
