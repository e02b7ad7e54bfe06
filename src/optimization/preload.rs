//! The preloader: warms the cache with what the most recently active chats will read first — each chat's
//! recent-history window and its stream — with bounded concurrency, through the same read path (so the
//! memory bound and TTLs apply).

use futures_util::StreamExt;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use serde_json::json;

use crate::config::PreloadSettings;
use crate::core::exec::Select;
use crate::core::registry::{self, ModelDef, PreloadRole};
use crate::optimization::cache::{Cache, Loader};
use crate::utils::error::{Error, Result};

/// What a warm-up did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PreloadReport {
    /// Chats warmed.
    pub chats: usize,
    /// Entries loaded (a chat's people count one each, though they are loaded with one query).
    pub reads: usize,
}

/// The column names of a model's partition and order (the history model has both: the generator checks).
fn history_columns(m: &ModelDef) -> Result<(&'static str, &'static str)> {
    match (m.partition, m.order) {
        (Some(p), Some(o)) => Ok((m.col(p).name, m.col(o).name)),
        _ => Err(Error::internal(format!("the history model `{}` needs a partition and an order column", m.name))),
    }
}

/// The partition column name of a model with a preload role.
fn partition_name(m: &ModelDef) -> Result<&'static str> {
    m.partition.map(|p| m.col(p).name).ok_or_else(|| Error::internal(format!("`{}` has no partition", m.name)))
}

/// The `limit` most recently active chat ids (partitions of the history model, by their latest row).
///
/// # Errors
/// [`Error::Database`].
pub(crate) async fn active_chats(conn: &DatabaseConnection, limit: u64) -> Result<Vec<String>> {
    let history = registry::preload_model(PreloadRole::History)?;
    let (part, order) = history_columns(history)?;
    let backend = conn.get_database_backend();
    let mut q = Query::select();
    q.column(Alias::new(part))
        .from(Alias::new(history.table))
        .group_by_col(Alias::new(part))
        .order_by_expr(Expr::col(Alias::new(order)).max(), Order::Desc)
        .limit(limit);
    let fail = |e| Error::from_db("preload", history.name, e);
    let rows = conn.query_all_raw(backend.build(&q)).await.map_err(fail)?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0).map_err(fail)).collect()
}

/// Warms the chats given (or, with `None`, the most recently active ones): each chat's recent-history window
/// and stream, then the people and relationships of those who spoke in the window. With `refresh`, entries
/// are reloaded even when cached (refresh ahead of expiry).
///
/// # Errors
/// [`Error::Database`] when the active chats cannot be listed; a failed warm read is logged and skipped.
pub(crate) async fn warm(
    cache: &Cache,
    conn: &DatabaseConnection,
    settings: &PreloadSettings,
    window_rows: u64,
    chats: Option<Vec<String>>,
    load: Loader<'_>,
    refresh: bool,
) -> Result<PreloadReport> {
    let chats = match chats {
        Some(c) => c,
        None => active_chats(conn, settings.chats).await?,
    };
    let history = registry::preload_model(PreloadRole::History)?;
    let streams = registry::preload_model(PreloadRole::Chat)?;
    let (part, order) = history_columns(history)?;
    let stream_key = partition_name(streams)?;
    let newest_first = [format!("-{order}")];
    let mut selects = Vec::with_capacity(chats.len() * 2);
    for chat in &chats {
        selects.push(Select::parse(history, &json!({ part: chat }), &newest_first, Some(window_rows))?);
        selects.push(Select::parse(streams, &json!({ stream_key: chat }), &[], Some(1))?);
    }
    let mut reads = run(cache, settings, selects.clone(), load, refresh).await;
    // The speakers of those windows: their person (by person_id, the hot key) and relationship (by user_id).
    let mut users: Vec<String> = Vec::new();
    for sel in selects.iter().filter(|s| s.model == history) {
        if let Ok(rows) = cache.read(sel, load).await {
            for r in rows.iter() {
                if let Some(u) = r.get("user_id").and_then(serde_json::Value::as_str)
                    && !users.iter().any(|x| x == u)
                {
                    users.push(u.to_owned());
                }
            }
        }
    }
    if !users.is_empty() {
        let people = registry::preload_model(PreloadRole::Speaker)?;
        let rels = registry::preload_model(PreloadRole::Relationship)?;
        let (person_key, rel_key) = (partition_name(people)?, partition_name(rels)?);
        let known = crate::core::exec::select(
            conn,
            &Select::parse(people, &json!({ "user_id": { "$in": users } }), &[], None)?,
        )
        .await?;
        let ids: Vec<serde_json::Value> = known.iter().filter_map(|p| p.get(person_key).cloned()).collect();
        let users: Vec<serde_json::Value> = users.into_iter().map(serde_json::Value::String).collect();
        for (m, col, values) in [(people, person_key, &ids), (rels, rel_key, &users)] {
            match cache.fill_points(m, col, values, load, refresh).await {
                Ok(n) => reads += n,
                Err(e) => tracing::warn!(model = m.name, error = %e, "preload read failed"),
            }
        }
    }
    Ok(PreloadReport { chats: chats.len(), reads })
}

/// Issues `selects` with bounded concurrency (below live reads, which are not bounded); returns how many.
async fn run(
    cache: &Cache,
    settings: &PreloadSettings,
    selects: Vec<Select>,
    load: Loader<'_>,
    refresh: bool,
) -> usize {
    let n = selects.len();
    futures_util::stream::iter(selects)
        .for_each_concurrent(settings.concurrency.max(1), |sel| async move {
            let r = if refresh { cache.refresh(&sel, load).await } else { cache.read(&sel, load).await.map(drop) };
            if let Err(e) = r {
                tracing::warn!(model = sel.model.name, error = %e, "preload read failed");
            }
        })
        .await;
    n
}
