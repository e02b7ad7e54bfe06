//! Statement building and execution: validated requests become sea-query statements (names from the
//! registry, values as bind parameters) and run on any connection or transaction.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, NullOrdering, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::Value;

use crate::core::data::{Changes, NewRow};
use crate::core::filter::Filter;
use crate::core::registry::ModelDef;
use crate::core::value::{Cell, Row, decode_row};
use crate::utils::error::{Error, Result};
use crate::utils::stable_hash::{StableHash, StableHasher};

/// A validated read: filter, order and limit. Equal selects mean equal results (a cache key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Select {
    /// The model.
    pub model: &'static ModelDef,
    /// The filter.
    pub filter: Filter,
    /// (column index, descending), applied in order; `id` ascending always breaks ties last.
    pub order: Vec<(usize, bool)>,
    /// Row limit; `None` for all rows.
    pub limit: Option<u64>,
    /// Rows skipped before the first one answered (`OFFSET`); 0 for none.
    pub offset: u64,
}

impl StableHash for Select {
    /// Model (by table name), filter, order and limit: what makes two selects the same read.
    fn stable_hash(&self, h: &mut StableHasher) {
        h.str(self.model.table).add(&self.filter).u64(self.order.len() as u64);
        for &(col, desc) in &self.order {
            h.u64(col as u64).u8(u8::from(desc));
        }
        h.u64(self.limit.map_or(u64::MAX, |l| l));
        // (Nothing for no offset: a select's hash stays what it was before offsets existed.)
        if self.offset > 0 {
            h.u8(0xB0).u64(self.offset);
        }
    }
}

impl Select {
    /// Validates a read. `order_by` names columns, a leading `-` meaning descending; `limit` 0 means none.
    ///
    /// # Errors
    /// Those of [`Filter::parse`], and [`Error::UnknownField`] for an unknown `order_by` name.
    pub fn parse(model: &'static ModelDef, filter: &Value, order_by: &[String], limit: Option<u64>) -> Result<Select> {
        let filter = Filter::parse(model, filter)?;
        let mut order = Vec::with_capacity(order_by.len());
        for name in order_by {
            let (field, desc) = match name.strip_prefix('-') {
                Some(f) => (f, true),
                None => (name.as_str(), false),
            };
            order.push((model.column_index(field)?, desc));
        }
        Ok(Select { model, filter, order, limit: limit.filter(|&l| l > 0), offset: 0 })
    }

    /// This select from its `offset`-th row on.
    pub fn with_offset(mut self, offset: u64) -> Select {
        self.offset = offset;
        self
    }

    /// The SQL statement and its bind parameters for `backend`.
    pub fn build(&self, backend: DbBackend) -> sea_orm::Statement {
        backend.build(&self.statement(backend))
    }

    fn statement(&self, backend: DbBackend) -> SelectStatement {
        let m = self.model;
        let mut q = Query::select();
        q.columns(m.columns.iter().map(|c| Alias::new(c.name))).from(Alias::new(m.table));
        q.cond_where(self.filter.to_condition(m, backend));
        for &(idx, desc) in &self.order {
            let col = Alias::new(m.col(idx).name);
            let order = if desc { Order::Desc } else { Order::Asc };
            // NULL sorts as the smallest value everywhere (SQLite's and MySQL's own rule).
            if backend == DbBackend::Postgres {
                let nulls = if desc { NullOrdering::Last } else { NullOrdering::First };
                q.order_by_with_nulls(col, order, nulls);
            } else {
                q.order_by(col, order);
            }
        }
        if !self.order.iter().any(|&(i, _)| i == 0) {
            q.order_by(Alias::new("id"), Order::Asc);
        }
        match (self.limit, self.offset) {
            (Some(l), _) => drop(q.limit(l)),
            // SQLite and MySQL take OFFSET only after a LIMIT.
            (None, o) if o > 0 && backend != DbBackend::Postgres => drop(q.limit(i64::MAX as u64)),
            _ => {}
        }
        if self.offset > 0 {
            q.offset(self.offset);
        }
        q
    }
}

/// Runs a select and decodes every row.
///
/// # Errors
/// [`Error::Database`].
pub async fn select<C: ConnectionTrait>(conn: &C, sel: &Select) -> Result<Vec<Row>> {
    let backend = conn.get_database_backend();
    let stmt = backend.build(&sel.statement(backend));
    let rows = conn.query_all_raw(stmt).await.map_err(|e| Error::from_db("select", sel.model.name, e))?;
    rows.iter().map(|r| decode_row(sel.model, r, backend)).collect()
}

/// [`select`] as a locking read on PostgreSQL and MySQL (`FOR UPDATE`): it sees the latest committed rows
/// even inside a REPEATABLE READ snapshot (MySQL's default) and holds them until the transaction ends. On
/// SQLite, whose single writer already excludes other writers, a plain select.
///
/// # Errors
/// [`Error::Database`].
pub async fn select_for_update<C: ConnectionTrait>(conn: &C, sel: &Select) -> Result<Vec<Row>> {
    let backend = conn.get_database_backend();
    if backend == DbBackend::Sqlite {
        return select(conn, sel).await;
    }
    let mut q = sel.statement(backend);
    q.lock_exclusive();
    let rows = conn.query_all_raw(backend.build(&q)).await.map_err(|e| Error::from_db("select", sel.model.name, e))?;
    rows.iter().map(|r| decode_row(sel.model, r, backend)).collect()
}

/// The distinct values of column `col` among rows matching `filter`, or `None` when there are more than
/// `max` (used to learn which partitions a write touches).
///
/// # Errors
/// [`Error::Database`].
pub async fn distinct_values<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    col: usize,
    filter: &Filter,
    max: usize,
) -> Result<Option<Vec<Value>>> {
    let backend = conn.get_database_backend();
    let c = model.col(col);
    let mut q = Query::select();
    q.distinct()
        .column(Alias::new(c.name))
        .from(Alias::new(model.table))
        .cond_where(filter.to_condition(model, backend))
        .limit(max as u64 + 1);
    let rows = conn.query_all_raw(backend.build(&q)).await.map_err(|e| Error::from_db("select", model.name, e))?;
    if rows.len() > max {
        return Ok(None);
    }
    rows.iter().map(|r| crate::core::value::decode(r, 0, c, backend)).collect::<Result<Vec<_>>>().map(Some)
}

/// Counts the rows matching `filter`.
///
/// # Errors
/// [`Error::Database`].
pub async fn count<C: ConnectionTrait>(conn: &C, model: &'static ModelDef, filter: &Filter) -> Result<u64> {
    let backend = conn.get_database_backend();
    let mut q = Query::select();
    q.expr(Expr::cust("COUNT(*)")).from(Alias::new(model.table)).cond_where(filter.to_condition(model, backend));
    let row = conn.query_one_raw(backend.build(&q)).await.map_err(|e| Error::from_db("count", model.name, e))?;
    let n: i64 = match row {
        Some(r) => r.try_get_by_index(0).map_err(|e| Error::from_db("count", model.name, e))?,
        None => 0,
    };
    Ok(n as u64)
}

/// Inserts one row and returns it with its id.
///
/// # Errors
/// [`Error::Constraint`] or [`Error::Database`].
pub async fn insert<C: ConnectionTrait>(conn: &C, row: &NewRow) -> Result<Row> {
    let backend = conn.get_database_backend();
    let m = row.model;
    let explicit = row.explicit_id();
    let skip = usize::from(explicit.is_none());
    let mut q = Query::insert();
    q.into_table(Alias::new(m.table)).columns(m.columns[skip..].iter().map(|c| Alias::new(c.name)));
    q.values_panic(m.columns[skip..].iter().zip(&row.cells[skip..]).map(|(c, v)| v.to_sql(c.kind, backend).into()));
    let err = |e| Error::from_db("insert", m.name, e);
    let id = match (explicit, backend) {
        (Some(id), _) => {
            conn.execute_raw(backend.build(&q)).await.map_err(err)?;
            id
        }
        (None, DbBackend::MySql) => conn.execute_raw(backend.build(&q)).await.map_err(err)?.last_insert_id() as i64,
        (None, _) => {
            q.returning_col(Alias::new("id"));
            let r = conn.query_one_raw(backend.build(&q)).await.map_err(err)?;
            let r = r.ok_or_else(|| Error::Database { op: "insert", message: "no id returned".into() })?;
            if backend == DbBackend::Postgres {
                i64::from(r.try_get_by_index::<i32>(0).map_err(err)?)
            } else {
                r.try_get_by_index::<i64>(0).map_err(err)?
            }
        }
    };
    Ok(row.to_row(id))
}

/// Applies `changes` to every row matching `filter`; returns how many rows matched.
///
/// # Errors
/// [`Error::Constraint`] or [`Error::Database`].
pub async fn update<C: ConnectionTrait>(conn: &C, filter: &Filter, changes: &Changes) -> Result<u64> {
    let backend = conn.get_database_backend();
    let m = changes.model;
    let mut q = Query::update();
    q.table(Alias::new(m.table));
    q.values(changes.sets.iter().map(|(i, c)| (Alias::new(m.col(*i).name), c.to_sql(m.col(*i).kind, backend).into())));
    q.cond_where(filter.to_condition(m, backend));
    let r = conn.execute_raw(backend.build(&q)).await.map_err(|e| Error::from_db("update", m.name, e))?;
    Ok(r.rows_affected())
}

/// Deletes every row matching `filter`; returns how many.
///
/// # Errors
/// [`Error::Database`].
pub async fn delete<C: ConnectionTrait>(conn: &C, model: &'static ModelDef, filter: &Filter) -> Result<u64> {
    let backend = conn.get_database_backend();
    let mut q = Query::delete();
    q.from_table(Alias::new(model.table)).cond_where(filter.to_condition(model, backend));
    let r = conn.execute_raw(backend.build(&q)).await.map_err(|e| Error::from_db("delete", model.name, e))?;
    Ok(r.rows_affected())
}

/// The bind-parameter limit of one statement on `backend`.
pub fn bind_limit(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Sqlite => 32_766,
        _ => 65_535,
    }
}

/// The `id` in a row's first column (`SERIAL` is 32-bit on PostgreSQL).
fn id_at(row: &sea_orm::QueryResult, backend: DbBackend) -> std::result::Result<i64, sea_orm::DbErr> {
    match backend {
        DbBackend::Postgres => row.try_get_by_index::<i32>(0).map(i64::from),
        _ => row.try_get_by_index::<i64>(0),
    }
}

/// The most text one multi-row `INSERT` carries: MySQL refuses (and drops the connection of) a statement
/// longer than its `max_allowed_packet` (16 MiB on MariaDB, 4 MiB on older MySQL).
const STATEMENT_BYTES: usize = 2 << 20;

/// Splits `rows` into statements under the bind-parameter limit and about [`STATEMENT_BYTES`] of values.
fn statement_chunks<'r, R: std::borrow::Borrow<NewRow>>(
    rows: &'r [R],
    backend: DbBackend,
    columns: usize,
) -> impl Iterator<Item = &'r [R]> + 'r {
    let per_chunk = (bind_limit(backend) / columns.max(1)).max(1);
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut bytes) = (0, 0);
        while n < rest.len() && n < per_chunk && (n == 0 || bytes < STATEMENT_BYTES) {
            bytes += rest[n]
                .borrow()
                .cells
                .iter()
                .map(|c| if let Cell::Text(t) = c { t.len() + 2 } else { 8 })
                .sum::<usize>();
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Inserts rows of one model with multi-row `INSERT`s, each under the backend's bind-parameter limit, and
/// returns them with their ids, in order. Rows must not carry explicit ids.
///
/// # Errors
/// [`Error::Constraint`] or [`Error::Database`] for the first failing statement (earlier chunks stay inserted
/// in the surrounding transaction).
pub async fn insert_many<C: ConnectionTrait>(conn: &C, rows: &[NewRow]) -> Result<Vec<Row>> {
    let Some(first) = rows.first() else { return Ok(vec![]) };
    let backend = conn.get_database_backend();
    let m = first.model;
    let cols = &m.columns[1..];
    let err = |e| Error::from_db("insert", m.name, e);
    let mut out = Vec::with_capacity(rows.len());
    // As few statements as the bind limit allows: each statement is a round trip to the driver's
    // connection thread (about 100 µs here), more than preparing a new row count costs; the engine keeps
    // 512 prepared statements per connection, so recurring sizes are prepared once.
    for chunk in statement_chunks(rows, backend, cols.len()) {
        let mut q = Query::insert();
        q.into_table(Alias::new(m.table)).columns(cols.iter().map(|c| Alias::new(c.name)));
        for row in chunk {
            q.values_panic(cols.iter().zip(&row.cells[1..]).map(|(c, v)| v.to_sql(c.kind, backend).into()));
        }
        let ids: Vec<i64> = if backend == DbBackend::MySql {
            // One multi-row INSERT gets consecutive ids starting at LAST_INSERT_ID().
            let first_id = conn.execute_raw(backend.build(&q)).await.map_err(err)?.last_insert_id() as i64;
            (0..chunk.len() as i64).map(|i| first_id + i).collect()
        } else {
            q.returning_col(Alias::new("id"));
            let got = conn.query_all_raw(backend.build(&q)).await.map_err(err)?;
            let mut ids =
                got.iter().map(|r| id_at(r, backend)).collect::<std::result::Result<Vec<_>, _>>().map_err(err)?;
            // Ids are assigned in VALUES order; RETURNING's own order is not promised.
            ids.sort_unstable();
            ids
        };
        out.extend(chunk.iter().zip(ids).map(|(r, id)| r.to_row(id)));
    }
    Ok(out)
}

/// Inserts rows of one model that carry their ids (a copy or an import of exported rows), skipping every row
/// whose id the table holds already, so running it twice adds nothing. Returns the rows inserted.
///
/// # Errors
/// [`Error::InvalidRequest`] for a row without an id; [`Error::Constraint`] (e.g. a natural key held by a row
/// with another id) or [`Error::Database`] for the first failing statement.
pub async fn insert_keeping_ids<C: ConnectionTrait>(conn: &C, rows: &[NewRow]) -> Result<u64> {
    let Some(first) = rows.first() else { return Ok(0) };
    let (backend, m) = (conn.get_database_backend(), first.model);
    let mut ids = Vec::with_capacity(rows.len());
    for r in rows {
        ids.push(r.explicit_id().ok_or_else(|| {
            Error::InvalidRequest(format!("a {} row to copy has no id: copied and imported rows keep theirs", m.name))
        })?);
    }
    let (lo, hi) = (ids.iter().min().copied().unwrap_or(0), ids.iter().max().copied().unwrap_or(0));
    let mut q = Query::select();
    q.column(Alias::new("id")).from(Alias::new(m.table)).and_where(Expr::col(Alias::new("id")).between(lo, hi));
    let err = |e| Error::from_db("insert", m.name, e);
    let held: std::collections::HashSet<i64> = conn
        .query_all_raw(backend.build(&q))
        .await
        .map_err(err)?
        .iter()
        .map(|r| id_at(r, backend))
        .collect::<std::result::Result<_, _>>()
        .map_err(err)?;
    let fresh: Vec<&NewRow> = rows.iter().zip(&ids).filter(|(_, id)| !held.contains(id)).map(|(r, _)| r).collect();
    for chunk in statement_chunks(&fresh, backend, m.columns.len()) {
        let mut q = Query::insert();
        q.into_table(Alias::new(m.table)).columns(m.columns.iter().map(|c| Alias::new(c.name)));
        for row in chunk {
            q.values_panic(m.columns.iter().zip(&row.cells).map(|(c, v)| v.to_sql(c.kind, backend).into()));
        }
        conn.execute_raw(backend.build(&q)).await.map_err(err)?;
    }
    Ok(fresh.len() as u64)
}

/// PostgreSQL: moves the `id` sequence of `model`'s table past its largest id (after rows were inserted with
/// their ids); elsewhere nothing (SQLite and MySQL follow the largest id by themselves).
///
/// # Errors
/// [`Error::Database`].
pub async fn reset_id_sequence<C: ConnectionTrait>(conn: &C, model: &'static ModelDef) -> Result<()> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let t = model.table;
    let sql =
        format!("SELECT setval(pg_get_serial_sequence('\"{t}\"', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM \"{t}\"");
    conn.execute_unprepared(&sql).await.map_err(|e| Error::from_db("reset sequence", model.name, e))?;
    Ok(())
}

/// Adds `delta` to column `col` of every row matching `filter` (`col = col + delta`); returns rows matched.
///
/// # Errors
/// [`Error::Database`].
pub async fn increment<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    filter: &Filter,
    col: usize,
    delta: &crate::core::value::Cell,
) -> Result<u64> {
    let backend = conn.get_database_backend();
    let c = model.col(col);
    let mut q = Query::update();
    q.table(Alias::new(model.table))
        .value(Alias::new(c.name), Expr::col(Alias::new(c.name)).add(delta.to_sql(c.kind, backend)))
        .cond_where(filter.to_condition(model, backend));
    let r = conn.execute_raw(backend.build(&q)).await.map_err(|e| Error::from_db("update", model.name, e))?;
    Ok(r.rows_affected())
}

/// [`update`] (or, with `delta`, [`increment`] of column `inc`) that also returns the distinct values of
/// column `ret` among the rows it changed, in the same statement (`UPDATE … RETURNING`, SQLite and
/// PostgreSQL). `None` values when more than `max` distinct ones came back.
///
/// # Errors
/// [`Error::Constraint`] or [`Error::Database`].
pub async fn update_returning<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    filter: &Filter,
    set: UpdateSet<'_>,
    ret: usize,
    max: usize,
) -> Result<(u64, Option<Vec<Value>>)> {
    let backend = conn.get_database_backend();
    let mut q = Query::update();
    q.table(Alias::new(model.table));
    match set {
        UpdateSet::Changes(changes) => {
            q.values(
                changes
                    .sets
                    .iter()
                    .map(|(i, c)| (Alias::new(model.col(*i).name), c.to_sql(model.col(*i).kind, backend).into())),
            );
        }
        UpdateSet::Increment(col, delta) => {
            let c = model.col(col);
            q.value(Alias::new(c.name), Expr::col(Alias::new(c.name)).add(delta.to_sql(c.kind, backend)));
        }
    }
    q.cond_where(filter.to_condition(model, backend)).returning_col(Alias::new(model.col(ret).name));
    let rows = conn.query_all_raw(backend.build(&q)).await.map_err(|e| Error::from_db("update", model.name, e))?;
    let mut values: Vec<Value> = Vec::new();
    for r in &rows {
        let v = crate::core::value::decode(r, 0, model.col(ret), backend)?;
        if !values.contains(&v) {
            if values.len() == max {
                return Ok((rows.len() as u64, None));
            }
            values.push(v);
        }
    }
    Ok((rows.len() as u64, Some(values)))
}

/// What an [`update_returning`] sets.
#[derive(Debug, Clone, Copy)]
pub enum UpdateSet<'a> {
    /// Column values.
    Changes(&'a Changes),
    /// `column = column + delta`.
    Increment(usize, &'a crate::core::value::Cell),
}

/// Several updates that each set the same columns on the rows whose `key` column equals their own value, in
/// one statement: `UPDATE … SET c = CASE WHEN key = k THEN v … ELSE c END WHERE key IN (…) RETURNING key[,
/// partition]` (SQLite, PostgreSQL; on MySQL a locking `SELECT key[, partition] … FOR UPDATE` of the same
/// keys, then the `UPDATE`). Later items win where keys repeat, as if run in order. Returns the rows
/// matched per item and the partition values touched (`None`: more than `max`).
///
/// # Errors
/// [`Error::Constraint`] or [`Error::Database`].
pub async fn update_grouped<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    key: usize,
    items: &[(&crate::core::value::Cell, &Changes)],
    partition: Option<usize>,
    max: usize,
) -> Result<(Vec<u64>, Option<Vec<Value>>)> {
    let backend = conn.get_database_backend();
    let Some((_, first)) = items.first() else { return Ok((vec![], Some(vec![]))) };
    let kc = model.col(key);
    let mut q = Query::update();
    q.table(Alias::new(model.table));
    for (idx, _) in &first.sets {
        let c = model.col(*idx);
        let mut case: Option<sea_orm::sea_query::CaseStatement> = None;
        for (k, changes) in items.iter().rev() {
            let v = changes.sets.iter().find(|(i, _)| i == idx).map(|(_, v)| v.to_sql(c.kind, backend));
            let Some(v) = v else { continue };
            let cond = Expr::col(Alias::new(kc.name)).eq(k.to_sql(kc.kind, backend));
            case = Some(match case {
                None => Expr::case(cond, v),
                Some(cs) => cs.case(cond, v),
            });
        }
        if let Some(cs) = case {
            q.value(Alias::new(c.name), cs.finally(Expr::col(Alias::new(c.name))));
        }
    }
    let keys: Vec<_> = items.iter().map(|(k, _)| *k).collect();
    let done = keyed_returning(conn, q, model, (key, None), &keys, partition, max).await?;
    Ok((done.counts, done.partitions))
}

/// Integer increments of column `col` by key (`col = col + CASE WHEN key = k THEN delta … ELSE 0 END WHERE
/// key IN (…) RETURNING key, col[, partition]`; on MySQL as in [`update_grouped`], without the values), one
/// item per distinct key. Returns the
/// rows matched per item, the partition values touched (`None`: more than `max`) and, per item matching
/// exactly one row, the column's value after the increment.
///
/// # Errors
/// [`Error::Database`].
pub async fn increment_grouped<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    key: usize,
    col: usize,
    items: &[(&crate::core::value::Cell, i64)],
    partition: Option<usize>,
    max: usize,
) -> Result<Keyed> {
    let backend = conn.get_database_backend();
    let Some(first) = items.first() else { return Ok(Keyed::default()) };
    let (kc, c) = (model.col(key), model.col(col));
    let arm = |(k, d): &(&crate::core::value::Cell, i64)| {
        (Expr::col(Alias::new(kc.name)).eq(k.to_sql(kc.kind, backend)), Expr::val(*d))
    };
    let (cond, then) = arm(first);
    let mut case = Expr::case(cond, then);
    for item in &items[1..] {
        let (cond, then) = arm(item);
        case = case.case(cond, then);
    }
    let mut q = Query::update();
    q.table(Alias::new(model.table))
        .value(Alias::new(c.name), Expr::col(Alias::new(c.name)).add(case.finally(Expr::val(0))));
    let keys: Vec<_> = items.iter().map(|(k, _)| *k).collect();
    keyed_returning(conn, q, model, (key, Some(col)), &keys, partition, max).await
}

/// MySQL compares text by its collation (case, trailing spaces): rows found by a grouped statement's keys
/// are counted per key only when no two keys could be equal there and every row's key is byte-equal to
/// one asked for; otherwise the group must run write by write (an error here makes the executor isolate
/// it, before anything was changed).
fn mysql_keys_are_exact(
    model: &ModelDef,
    kc: &crate::core::registry::ColumnDef,
    keys: &[&crate::core::value::Cell],
    rows: &[sea_orm::QueryResult],
) -> Result<()> {
    if kc.kind != crate::core::registry::Kind::Text {
        return Ok(());
    }
    let not_exact = || Error::Database {
        op: "update",
        message: format!("{}: grouped keys of {} not exact under the collation", model.name, kc.name),
    };
    let mut folded: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for k in keys {
        let crate::core::value::Cell::Text(t) = k else { return Err(not_exact()) };
        if !t.is_ascii() {
            return Err(not_exact());
        }
        if *folded.entry(t.trim_end().to_ascii_lowercase()).or_insert(t) != t.as_str() {
            return Err(not_exact());
        }
    }
    let asked: std::collections::HashSet<&str> = folded.into_values().collect();
    for r in rows {
        let k = crate::core::value::decode(r, 0, kc, DbBackend::MySql)?;
        if !k.as_str().is_some_and(|k| asked.contains(k)) {
            return Err(not_exact());
        }
    }
    Ok(())
}

/// What a statement restricted to keys answered.
#[derive(Debug, Default)]
pub struct Keyed {
    /// Rows matched per key.
    pub counts: Vec<u64>,
    /// The partition values of the rows it changed (`None`: more than asked for).
    pub partitions: Option<Vec<Value>>,
    /// Per key matching exactly one row, the returned column's value (empty when none was asked for).
    pub values: Vec<Option<Value>>,
}

/// Restricts `q` to rows whose `key.0` is one of `keys`, runs it with `RETURNING key[, key.1][, partition]`,
/// and counts the rows returned per key.
async fn keyed_returning<C: ConnectionTrait>(
    conn: &C,
    mut q: sea_orm::sea_query::UpdateStatement,
    model: &'static ModelDef,
    (key, value): (usize, Option<usize>),
    keys: &[&crate::core::value::Cell],
    partition: Option<usize>,
    max: usize,
) -> Result<Keyed> {
    let backend = conn.get_database_backend();
    let kc = model.col(key);
    let in_list: Vec<_> = keys.iter().map(|k| k.to_sql(kc.kind, backend)).collect();
    q.and_where(Expr::col(Alias::new(kc.name)).is_in(in_list.clone()));
    // MySQL has no `RETURNING`: the rows' keys (and partitions) come from a locking read of the same keys
    // just before, and the value an increment left stays unknown.
    let value = value.filter(|_| backend != DbBackend::MySql);
    let extra: Vec<usize> = value.into_iter().chain(partition).collect();
    let returned: Vec<Alias> =
        std::iter::once(key).chain(extra.iter().copied()).map(|i| Alias::new(model.col(i).name)).collect();
    let rows = if backend == DbBackend::MySql {
        let mut read = Query::select();
        read.columns(returned).from(Alias::new(model.table)).and_where(Expr::col(Alias::new(kc.name)).is_in(in_list));
        read.lock_exclusive();
        let rows =
            conn.query_all_raw(backend.build(&read)).await.map_err(|e| Error::from_db("update", model.name, e))?;
        mysql_keys_are_exact(model, kc, keys, &rows)?;
        conn.execute_raw(backend.build(&q)).await.map_err(|e| Error::from_db("update", model.name, e))?;
        rows
    } else {
        // One RETURNING clause with every column (`returning_col` twice would keep only the last).
        q.returning(Query::returning().columns(returned));
        conn.query_all_raw(backend.build(&q)).await.map_err(|e| Error::from_db("update", model.name, e))?
    };
    let mut per_key: std::collections::HashMap<String, (u64, Option<Value>)> = std::collections::HashMap::new();
    let mut parts: Vec<Value> = Vec::new();
    let mut overflow = false;
    for r in &rows {
        let k = crate::core::value::decode(r, 0, kc, backend)?;
        let v = match value {
            Some(c) => Some(crate::core::value::decode(r, 1, model.col(c), backend)?),
            None => None,
        };
        let slot = per_key.entry(k.to_string()).or_default();
        slot.0 += 1;
        slot.1 = v;
        if let Some(p) = partition {
            let v = crate::core::value::decode(r, extra.len(), model.col(p), backend)?;
            if !parts.contains(&v) {
                if parts.len() == max {
                    overflow = true;
                } else {
                    parts.push(v);
                }
            }
        }
    }
    let mut done = Keyed { partitions: (!overflow).then_some(parts), ..Keyed::default() };
    for k in keys {
        let (n, v) = per_key.get(&k.to_json().to_string()).cloned().unwrap_or_default();
        done.counts.push(n);
        if value.is_some() {
            done.values.push(if n == 1 { v } else { None });
        }
    }
    Ok(done)
}

/// An aggregate of one column over the rows a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Rows whose column is not NULL (an integer).
    Count,
    /// The sum (an integer for integer columns, a float for float columns; `null` over no rows).
    Sum,
    /// The smallest value (`null` over no rows).
    Min,
    /// The largest value (`null` over no rows).
    Max,
    /// The mean, a float (`null` over no rows).
    Avg,
    /// The total length in characters of a text column (0 over no rows).
    SumLength,
}

impl Aggregate {
    /// Parses `count`, `sum`, `min`, `max`, `avg`, `sum_length`.
    pub fn parse(name: &str) -> Option<Aggregate> {
        Some(match name {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "avg" => Aggregate::Avg,
            "sum_length" => Aggregate::SumLength,
            _ => return None,
        })
    }
}

/// A column's name quoted for `backend` (names come from the registry only).
fn quoted(name: &str, backend: DbBackend) -> String {
    match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

/// Runs an aggregate the caller has checked fits the column (see `Db::aggregate`); the SQL casts so every
/// backend answers the same type.
///
/// # Errors
/// [`Error::Database`].
pub async fn aggregate<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    filter: &Filter,
    agg: Aggregate,
    column: usize,
) -> Result<Value> {
    use crate::core::registry::Kind;
    let backend = conn.get_database_backend();
    let col = model.col(column);
    let c = quoted(col.name, backend);
    let mysql = backend == DbBackend::MySql;
    let integer = matches!(col.kind, Kind::Id | Kind::Int);
    let sql = match agg {
        Aggregate::Count => format!("COUNT({c})"),
        Aggregate::Sum if integer && mysql => format!("CAST(SUM({c}) AS SIGNED)"),
        Aggregate::Sum => format!("SUM({c})"),
        Aggregate::Min => format!("MIN({c})"),
        Aggregate::Max => format!("MAX({c})"),
        Aggregate::Avg => match backend {
            DbBackend::Postgres => format!("CAST(AVG({c}) AS DOUBLE PRECISION)"),
            DbBackend::MySql => format!("CAST(AVG({c}) AS DOUBLE)"),
            _ => format!("AVG({c})"),
        },
        Aggregate::SumLength if mysql => format!("CAST(COALESCE(SUM(CHAR_LENGTH({c})), 0) AS SIGNED)"),
        Aggregate::SumLength => format!("COALESCE(SUM(LENGTH({c})), 0)"),
    };
    let mut q = Query::select();
    q.expr(Expr::cust(sql)).from(Alias::new(model.table)).cond_where(filter.to_condition(model, backend));
    let err = |e| Error::from_db("aggregate", model.name, e);
    let Some(row) = conn.query_one_raw(backend.build(&q)).await.map_err(err)? else { return Ok(Value::Null) };
    Ok(match agg {
        Aggregate::Count | Aggregate::SumLength => row.try_get_by_index::<i64>(0).map_err(err)?.into(),
        Aggregate::Sum if integer => row.try_get_by_index::<Option<i64>>(0).map_err(err)?.into(),
        Aggregate::Sum | Aggregate::Avg => row.try_get_by_index::<Option<f64>>(0).map_err(err)?.into(),
        Aggregate::Min | Aggregate::Max => crate::core::value::decode(&row, 0, col, backend)?,
    })
}

/// The distinct values of one column over the rows a filter matches, NULL included, in a total order the
/// same on every backend (NULL, then numbers, then text by bytes), not the database's collation.
///
/// # Errors
/// [`Error::Database`].
pub async fn distinct<C: ConnectionTrait>(
    conn: &C,
    model: &'static ModelDef,
    filter: &Filter,
    column: usize,
) -> Result<Vec<Value>> {
    let backend = conn.get_database_backend();
    let col = model.col(column);
    let mut q = Query::select();
    q.distinct()
        .column(Alias::new(col.name))
        .from(Alias::new(model.table))
        .cond_where(filter.to_condition(model, backend));
    let rows = conn.query_all_raw(backend.build(&q)).await.map_err(|e| Error::from_db("distinct", model.name, e))?;
    let mut out = rows.iter().map(|r| crate::core::value::decode(r, 0, col, backend)).collect::<Result<Vec<_>>>()?;
    out.sort_by(total_order);
    Ok(out)
}

/// NULL, booleans, numbers, then strings by bytes.
fn total_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        _ => 3,
    };
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(f64::NAN).total_cmp(&y.as_f64().unwrap_or(f64::NAN))
        }
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => std::cmp::Ordering::Equal,
    })
}
