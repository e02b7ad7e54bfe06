//! The statements of `botdb_cache_fence` (botdb's own one-row table; the migration
//! `m20261202_000001_create_cache_fence` creates it). What the fence means is in
//! `optimization/cache/fence.rs`.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::utils::error::{Error, Result};

const TABLE: &str = "botdb_cache_fence";

/// The fence row: writes owed to the shared counters, writes made good, and the counters that made them good
/// (`(model index, value of its "all" counter)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FenceRow {
    pub(crate) owed: i64,
    pub(crate) paid: i64,
    pub(crate) floors: Vec<(usize, u64)>,
}

fn id_is_one() -> Expr {
    ExprTrait::eq(Expr::col(Alias::new("id")), 1)
}

fn failed(e: sea_orm::DbErr) -> Error {
    Error::from_db("cache fence", "", e)
}

/// Reads the fence row.
///
/// # Errors
/// [`Error::Database`] (a database without the table: migrations not applied).
pub(crate) async fn read(conn: &DatabaseConnection) -> Result<FenceRow> {
    let stmt = Query::select()
        .columns([Alias::new("owed"), Alias::new("paid"), Alias::new("floors")])
        .from(Alias::new(TABLE))
        .and_where(id_is_one())
        .to_owned();
    let row = conn
        .query_one(&stmt)
        .await
        .map_err(failed)?
        .ok_or_else(|| Error::internal(format!("`{TABLE}` has no row 1: run the migrations")))?;
    let owed: i64 = row.try_get_by_index(0).map_err(failed)?;
    let paid: i64 = row.try_get_by_index(1).map_err(failed)?;
    let floors: String = row.try_get_by_index(2).map_err(failed)?;
    let floors = floors
        .split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (m, v) = p.split_once('=')?;
            Some((m.parse().ok()?, v.parse().ok()?))
        })
        .collect();
    Ok(FenceRow { owed, paid, floors })
}

/// Counts one more write owed; returns the row after it.
///
/// # Errors
/// [`Error::Database`].
pub(crate) async fn owe(conn: &DatabaseConnection) -> Result<FenceRow> {
    let stmt = Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("owed"), ExprTrait::add(Expr::col(Alias::new("owed")), 1))
        .and_where(id_is_one())
        .to_owned();
    conn.execute(&stmt).await.map_err(failed)?;
    read(conn).await
}

/// Records that the writes owed up to `owed` were made good by raising the counters to `floors`, unless more
/// were owed meanwhile (then the next payment covers them all). Returns whether it was recorded.
///
/// # Errors
/// [`Error::Database`].
pub(crate) async fn pay(conn: &DatabaseConnection, owed: i64, floors: &[(usize, u64)]) -> Result<bool> {
    let text: Vec<String> = floors.iter().map(|(m, v)| format!("{m}={v}")).collect();
    let stmt = Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("paid"), owed)
        .value(Alias::new("floors"), text.join(","))
        .and_where(id_is_one())
        .and_where(ExprTrait::eq(Expr::col(Alias::new("owed")), owed))
        .to_owned();
    Ok(conn.execute(&stmt).await.map_err(failed)?.rows_affected() == 1)
}
