//! The compatibility facade the bot's plugins expect: `db_query`, `db_save`, `db_get`, `store_action_info`
//! and `MODEL_MAPPING`, as free functions over one process-wide handle installed with [`install`], and as
//! methods of [`Compat`] over an explicit handle. Unlike the Python original, mistakes are typed errors,
//! never a silently dropped condition or a `None`.

use std::sync::RwLock;

use serde_json::{Value, json};

use crate::api::db::Db;
use crate::api::named::QueryRequest;
use crate::core::filter::json_kind;
use crate::utils::error::{Error, Result};
use crate::utils::time;

pub use crate::core::registry::MODEL_MAPPING;

static HANDLE: RwLock<Option<Db>> = RwLock::new(None);

/// Installs the handle the free functions use, replacing any earlier one (which is returned).
pub fn install(db: Db) -> Option<Db> {
    HANDLE.write().unwrap_or_else(std::sync::PoisonError::into_inner).replace(db)
}

/// Removes the installed handle.
pub fn uninstall() -> Option<Db> {
    HANDLE.write().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

fn handle() -> Result<Compat> {
    let guard = HANDLE.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.clone().map(Compat).ok_or(Error::NotInstalled)
}

/// The facade over an explicit handle (the free functions use the installed one).
#[derive(Clone, Debug)]
pub struct Compat(pub Db);

/// The arguments of `store_action_info`, with the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionInfo {
    /// The chat stream: a JSON object with at least `stream_id` and `platform`, or none.
    pub chat_stream: Option<Value>,
    /// Default false.
    pub action_build_into_prompt: bool,
    /// Default "".
    pub action_prompt_display: String,
    /// Default true.
    pub action_done: bool,
    /// Default "": then the action id is the current epoch microseconds.
    pub thinking_id: String,
    /// Default `{}`; stored as compact JSON text.
    pub action_data: Value,
    /// Default "".
    pub action_name: String,
}

impl Default for ActionInfo {
    fn default() -> Self {
        Self {
            chat_stream: None,
            action_build_into_prompt: false,
            action_prompt_display: String::new(),
            action_done: true,
            thinking_id: String::new(),
            action_data: json!({}),
            action_name: String::new(),
        }
    }
}

fn to_limit(limit: Option<i64>) -> Result<Option<u64>> {
    match limit {
        Some(l) if l < 0 => Err(Error::InvalidRequest(format!("limit must be 0 (none) or positive, got {l}"))),
        Some(l) => Ok(Some(l as u64)),
        None => Ok(None),
    }
}

impl Compat {
    /// `db_query(model_name, query_type, filters, data, limit, order_by, single_result)`: a list of rows, a row
    /// or `null` (single result / create), or a number (update, delete, count).
    ///
    /// # Errors
    /// As [`Db::query`]; an unknown `query_type` is [`Error::InvalidRequest`].
    #[allow(clippy::too_many_arguments)]
    pub async fn db_query(
        &self,
        model_name: &str,
        query_type: &str,
        filters: Option<&Value>,
        data: Option<&Value>,
        limit: Option<i64>,
        order_by: Option<&[String]>,
        single_result: bool,
    ) -> Result<Value> {
        let req = QueryRequest {
            query_type: query_type.parse()?,
            filters: filters.cloned().unwrap_or(Value::Null),
            data: data.cloned(),
            limit: to_limit(limit)?,
            order_by: order_by.map(<[String]>::to_vec).unwrap_or_default(),
            single_result,
            offset: None,
        };
        Ok(self.0.query(model_name, &req).await?.into_json())
    }

    /// `db_save(model_name, data, key_field, key_value)`: the upsert of [`Db::save`]; returns the row.
    ///
    /// # Errors
    /// As [`Db::save`]; a key field without a value (or the reverse) is [`Error::InvalidRequest`].
    pub async fn db_save(
        &self,
        model_name: &str,
        data: &Value,
        key_field: Option<&str>,
        key_value: Option<&Value>,
    ) -> Result<Value> {
        let key = match (key_field, key_value) {
            (Some(f), Some(v)) => Some((f, v)),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidRequest("db_save takes key_field and key_value together".into()));
            }
        };
        Ok(Value::Object(self.0.save(model_name, data, key).await?))
    }

    /// `db_get(model_name, filters, limit, order_by, single_result)`.
    ///
    /// # Errors
    /// As [`Db::query`].
    pub async fn db_get(
        &self,
        model_name: &str,
        filters: Option<&Value>,
        limit: Option<i64>,
        order_by: Option<&str>,
        single_result: bool,
    ) -> Result<Value> {
        let filters = filters.cloned().unwrap_or(Value::Null);
        Ok(self.0.get(model_name, &filters, to_limit(limit)?, order_by, single_result).await?.into_json())
    }

    /// `store_action_info(...)`: writes one `action_records` row (an upsert keyed on `action_id`) and returns it.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a chat stream without `stream_id`/`platform` strings; as [`Db::save`].
    pub async fn store_action_info(&self, info: &ActionInfo) -> Result<Value> {
        let (chat_id, platform) = match &info.chat_stream {
            None | Some(Value::Null) => (String::new(), String::new()),
            Some(cs) => {
                let field = |k: &str| {
                    cs.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                        Error::InvalidRequest(format!(
                            "chat_stream needs a string `{k}`, got {}",
                            cs.get(k).map_or("nothing", json_kind)
                        ))
                    })
                };
                (field("stream_id")?, field("platform")?)
            }
        };
        let action_id = if info.thinking_id.is_empty() {
            format!("{:016}", time::unique_epoch_micros())
        } else {
            info.thinking_id.clone()
        };
        let action_data = serde_json::to_string(&info.action_data)
            .map_err(|e| Error::InvalidRequest(format!("action_data cannot be serialised: {e}")))?;
        let data = json!({
            "action_id": action_id,
            "time": time::now_epoch(),
            "action_name": info.action_name,
            "action_data": action_data,
            "action_done": info.action_done,
            "action_build_into_prompt": info.action_build_into_prompt,
            "action_prompt_display": info.action_prompt_display,
            "chat_id": chat_id,
            "chat_info_stream_id": chat_id,
            "chat_info_platform": platform,
        });
        let key = Value::String(action_id);
        Ok(Value::Object(self.0.save("ActionRecords", &data, Some(("action_id", &key))).await?))
    }
}

/// [`Compat::db_query`] on the installed handle.
///
/// # Errors
/// [`Error::NotInstalled`], or as [`Compat::db_query`].
pub async fn db_query(
    model_name: &str,
    query_type: &str,
    filters: Option<&Value>,
    data: Option<&Value>,
    limit: Option<i64>,
    order_by: Option<&[String]>,
    single_result: bool,
) -> Result<Value> {
    handle()?.db_query(model_name, query_type, filters, data, limit, order_by, single_result).await
}

/// [`Compat::db_save`] on the installed handle.
///
/// # Errors
/// [`Error::NotInstalled`], or as [`Compat::db_save`].
pub async fn db_save(
    model_name: &str,
    data: &Value,
    key_field: Option<&str>,
    key_value: Option<&Value>,
) -> Result<Value> {
    handle()?.db_save(model_name, data, key_field, key_value).await
}

/// [`Compat::db_get`] on the installed handle.
///
/// # Errors
/// [`Error::NotInstalled`], or as [`Compat::db_get`].
pub async fn db_get(
    model_name: &str,
    filters: Option<&Value>,
    limit: Option<i64>,
    order_by: Option<&str>,
    single_result: bool,
) -> Result<Value> {
    handle()?.db_get(model_name, filters, limit, order_by, single_result).await
}

/// [`Compat::store_action_info`] on the installed handle.
///
/// # Errors
/// [`Error::NotInstalled`], or as [`Compat::store_action_info`].
pub async fn store_action_info(info: &ActionInfo) -> Result<Value> {
    handle()?.store_action_info(info).await
}
