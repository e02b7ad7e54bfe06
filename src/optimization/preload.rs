//! The preloader: warms the cache with what the most recently active chats will read first — each chat's
//! recent-history window and its stream — with bounded concurrency, through the same read path (so the
//! memory bound and TTLs apply).

use futures_util::StreamExt;
use sea_orm::sea_query::{Alias, Expr, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use serde_json::json;

use crate::config::PreloadSettings;
use crate::core::exec::Select;
use crate::core::registry;
use crate::optimization::cache::{Cache, Loader};
use crate::utils::error::{Error, Result};

/// What a warm-up did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PreloadReport {
    /// Chats warmed.
    pub chats: usize,
    /// Reads issued.
    pub reads: usize,
}

/// The `limit` most recently active chat ids.
///
/// # Errors
/// [`Error::Database`].
pub async fn active_chats(conn: &DatabaseConnection, limit: u64) -> Result<Vec<String>> {
    let backend = conn.get_database_backend();
    let mut q = Query::select();
    q.column(Alias::new("chat_id"))
        .from(Alias::new("messages"))
        .group_by_col(Alias::new("chat_id"))
        .order_by_expr(Expr::cust("MAX(time)"), Order::Desc)
        .limit(limit);
    let rows = conn.query_all_raw(backend.build(&q)).await.map_err(|e| Error::from_db("preload", "Messages", e))?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0).map_err(|e| Error::from_db("preload", "Messages", e))).collect()
}

/// Warms the chats given (or, with `None`, the most recently active ones).
///
/// # Errors
/// [`Error::Database`] when the active chats cannot be listed; a failed warm read is logged and skipped.
pub async fn warm(
    cache: &Cache,
    conn: &DatabaseConnection,
    settings: &PreloadSettings,
    window_rows: u64,
    chats: Option<Vec<String>>,
    load: Loader<'_>,
) -> Result<PreloadReport> {
    let chats = match chats {
        Some(c) => c,
        None => active_chats(conn, settings.chats).await?,
    };
    let messages = registry::model("Messages")?;
    let streams = registry::model("ChatStreams")?;
    let mut selects = Vec::with_capacity(chats.len() * 2);
    for chat in &chats {
        selects.push(Select::parse(messages, &json!({ "chat_id": chat }), &["-time".into()], Some(window_rows))?);
        selects.push(Select::parse(streams, &json!({ "stream_id": chat }), &[], Some(1))?);
    }
    let reads = selects.len();
    futures_util::stream::iter(selects)
        .for_each_concurrent(settings.concurrency.max(1), |sel| async move {
            if let Err(e) = cache.read(&sel, load).await {
                tracing::warn!(model = sel.model.name, error = %e, "preload read failed");
            }
        })
        .await;
    Ok(PreloadReport { chats: chats.len(), reads })
}
