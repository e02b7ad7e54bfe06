//! The name-based CRUD: model names and JSON filters/data in, JSON rows and counts out, exactly as
//! `spec/api.md` says. Everything is validated against the registry before any SQL runs.

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::db::Db;
use crate::core::data::{Changes, NewRow};
use crate::core::exec::Select;
use crate::core::filter::Filter;
use crate::core::registry::{self, ModelDef};
use crate::core::value::{Cell, Row, Rows};
use crate::optimization::batch::{WriteOp, WriteOutcome};
use crate::utils::error::{Error, Result};

/// What a [`Db::query`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryType {
    /// Read rows (the default).
    #[default]
    Get,
    /// Insert one row from `data`.
    Create,
    /// Apply `data` to every matching row.
    Update,
    /// Delete every matching row.
    Delete,
    /// Count the matching rows.
    Count,
}

impl QueryType {
    /// The name `db_query` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::Get => "get",
            QueryType::Create => "create",
            QueryType::Update => "update",
            QueryType::Delete => "delete",
            QueryType::Count => "count",
        }
    }
}

impl FromStr for QueryType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "get" => QueryType::Get,
            "create" => QueryType::Create,
            "update" => QueryType::Update,
            "delete" => QueryType::Delete,
            "count" => QueryType::Count,
            other => {
                return Err(Error::InvalidRequest(format!(
                    "unknown query_type `{other}`; use get, create, update, delete or count"
                )));
            }
        })
    }
}

/// A request of the name-based API (the arguments of `db_query`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryRequest {
    /// What to do.
    pub query_type: QueryType,
    /// The filter (`null` or `{}`: every row).
    pub filters: Value,
    /// The row or the changes, for create and update.
    pub data: Option<Value>,
    /// A row limit for get; `None` or 0: no limit.
    pub limit: Option<u64>,
    /// Column names, `-` for descending.
    pub order_by: Vec<String>,
    /// Return the first row or `null` (issued with `LIMIT 1`).
    pub single_result: bool,
    /// For get: rows skipped first (`OFFSET`; deep pages get slower, see [`Db::find_after`]). `None`: none.
    pub offset: Option<u64>,
}

/// What a [`Db::query`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutput {
    /// `get`: the rows (shared: a cache hit copies no row).
    Rows(Rows),
    /// `get` with `single_result`: the first row or none.
    One(Option<Arc<Row>>),
    /// `create`: the created row.
    Created(Row),
    /// `update`, `delete`, `count`: a number of rows.
    Count(u64),
}

impl QueryOutput {
    /// The JSON the compatibility facade returns: a list, a row or `null`, or a number.
    pub fn into_json(self) -> Value {
        match self {
            QueryOutput::Rows(rows) => Value::Array(rows.iter().map(|r| Value::Object(Row::clone(r))).collect()),
            QueryOutput::One(row) => row.map_or(Value::Null, |r| Value::Object(Row::clone(&r))),
            QueryOutput::Created(row) => Value::Object(row),
            QueryOutput::Count(n) => Value::from(n),
        }
    }
}

fn require_data<'a>(model: &ModelDef, data: Option<&'a Value>, what: &str) -> Result<&'a Value> {
    data.ok_or_else(|| Error::InvalidRequest(format!("a {what} of `{}` needs `data`", model.name)))
}

impl Db {
    /// Runs one name-based request.
    ///
    /// # Errors
    /// Validation errors before any SQL; [`Error::Constraint`], [`Error::Busy`] or [`Error::Database`] after.
    ///
    /// # Example
    /// ```no_run
    /// # async fn f(db: botdb::Db) -> botdb::Result<()> {
    /// use botdb::{QueryRequest, QueryType};
    /// let req = QueryRequest {
    ///     query_type: QueryType::Count,
    ///     filters: serde_json::json!({"chat_id": "abc", "time": {"$gt": 1.0e9}}),
    ///     ..Default::default()
    /// };
    /// let n = db.query("Messages", &req).await?;
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "query"))]
    pub async fn query(&self, model: &str, req: &QueryRequest) -> Result<QueryOutput> {
        let m = registry::model(model)?;
        match req.query_type {
            QueryType::Get => {
                let limit = if req.single_result { Some(1) } else { req.limit };
                let sel = Select::parse(m, &req.filters, &req.order_by, limit)?.with_offset(req.offset.unwrap_or(0));
                let rows = self.store().read(&sel, self.session_state()).await?;
                Ok(if req.single_result { QueryOutput::One(rows.first().cloned()) } else { QueryOutput::Rows(rows) })
            }
            QueryType::Create => {
                let row = NewRow::parse(m, require_data(m, req.data.as_ref(), "create")?)?;
                Ok(QueryOutput::Created(self.insert_row(row).await?))
            }
            QueryType::Update => {
                let filter = Filter::parse(m, &req.filters)?;
                let changes = Changes::parse(m, require_data(m, req.data.as_ref(), "update")?)?;
                Ok(QueryOutput::Count(self.update_rows(filter, changes).await?))
            }
            QueryType::Delete => Ok(QueryOutput::Count(self.delete_rows(m, Filter::parse(m, &req.filters)?).await?)),
            QueryType::Count => {
                let filter = Filter::parse(m, &req.filters)?;
                self.store().count(m, &filter, self.session_state()).await.map(QueryOutput::Count)
            }
        }
    }

    /// Rows of `model` matching `filters`, ordered by `order_by` (`-` for descending), at most `limit`.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "find"))]
    pub async fn find(&self, model: &str, filters: &Value, order_by: &[&str], limit: Option<u64>) -> Result<Rows> {
        let m = registry::model(model)?;
        let order: Vec<String> = order_by.iter().map(|s| (*s).to_owned()).collect();
        self.store().read(&Select::parse(m, filters, &order, limit)?, self.session_state()).await
    }

    /// A page: like [`Db::find`], after skipping `offset` rows (`OFFSET`: the database still walks the
    /// skipped rows, so deep pages slow down; [`Db::find_after`] does not).
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "find_page"))]
    pub async fn find_page(
        &self,
        model: &str,
        filters: &Value,
        order_by: &[&str],
        limit: Option<u64>,
        offset: u64,
    ) -> Result<Rows> {
        let m = registry::model(model)?;
        let order: Vec<String> = order_by.iter().map(|s| (*s).to_owned()).collect();
        self.store().read(&Select::parse(m, filters, &order, limit)?.with_offset(offset), self.session_state()).await
    }

    /// Keyset paging in id order: the rows matching `filters` whose id is above `after_id` (0 for the first
    /// page), at most `limit`, ascending by id. Pass the last row's id as the next `after_id`; each page
    /// costs the same at any depth (an index range on the primary key), and rows inserted meanwhile are
    /// neither skipped nor repeated.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "find_after"))]
    pub async fn find_after(&self, model: &str, filters: &Value, after_id: i64, limit: u64) -> Result<Rows> {
        use crate::core::filter::{Op, Predicate};
        use crate::core::value::Cell;
        let m = registry::model(model)?;
        let mut sel = Select::parse(m, filters, &["id".to_owned()], Some(limit))?;
        sel.filter.conds.push(Predicate { column: 0, op: Op::Gt, values: vec![Cell::Int(after_id)] });
        sel.filter.conds.sort_by_key(|c| (c.column, c.op));
        self.store().read(&sel, self.session_state()).await
    }

    /// Like [`Db::find`], each row holding only `fields`, in that order (a projection of the cached rows:
    /// the bot's `SELECT image_id … LIMIT 1`).
    ///
    /// # Errors
    /// As [`Db::query`]; [`Error::UnknownField`] for a field the model does not have.
    pub async fn find_fields(
        &self,
        model: &str,
        filters: &Value,
        fields: &[&str],
        order_by: &[&str],
        limit: Option<u64>,
    ) -> Result<Vec<Row>> {
        let m = registry::model(model)?;
        for f in fields {
            m.column_index(f)?;
        }
        let rows = self.find(model, filters, order_by, limit).await?;
        Ok(rows
            .iter()
            .map(|r| fields.iter().map(|f| ((*f).to_owned(), r.get(*f).cloned().unwrap_or(Value::Null))).collect())
            .collect())
    }

    /// The first `limit_per` rows (in `order_by` order) of each value of `per_field` in `values`, among
    /// the rows matching `filters`: the newest 50 messages of each of 20 chats, say. Answers the groups in
    /// the order of `values`. Each group is one cached read (a chat's recent-history window answers it).
    ///
    /// # Errors
    /// As [`Db::query`]; [`Error::UnknownField`] for `per_field`.
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "find_per"))]
    pub async fn find_per(
        &self,
        model: &str,
        per_field: &str,
        values: &[Value],
        filters: &Value,
        order_by: &[&str],
        limit_per: u64,
    ) -> Result<Vec<(Value, Rows)>> {
        let m = registry::model(model)?;
        m.column_index(per_field)?;
        let empty = filters.is_null() || filters.as_object().is_some_and(serde_json::Map::is_empty);
        let reads = values.iter().map(|v| async move {
            let one = serde_json::json!({ per_field: v });
            let filter = if empty { one } else { serde_json::json!({"$and": [filters, one]}) };
            self.find(model, &filter, order_by, Some(limit_per)).await.map(|rows| (v.clone(), rows))
        });
        futures_util::future::join_all(reads).await.into_iter().collect()
    }

    /// The first row of `model` matching `filters` in `order_by` order, if any (`LIMIT 1`).
    ///
    /// # Errors
    /// As [`Db::query`].
    pub async fn find_one(&self, model: &str, filters: &Value, order_by: &[&str]) -> Result<Option<Arc<Row>>> {
        Ok(self.find(model, filters, order_by, Some(1)).await?.first().cloned())
    }

    /// Creates one row from `data` (client-side defaults filled in) and returns it with its id.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "create"))]
    pub async fn create(&self, model: &str, data: &Value) -> Result<Row> {
        let m = registry::model(model)?;
        self.insert_row(NewRow::parse(m, data)?).await
    }

    /// Applies `data` to every row matching `filters`; returns the number of rows matched.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "update"))]
    pub async fn update(&self, model: &str, filters: &Value, data: &Value) -> Result<u64> {
        let m = registry::model(model)?;
        let filter = Filter::parse(m, filters)?;
        self.update_rows(filter, Changes::parse(m, data)?).await
    }

    /// Deletes every row matching `filters`; returns how many.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "delete"))]
    pub async fn delete(&self, model: &str, filters: &Value) -> Result<u64> {
        let m = registry::model(model)?;
        self.delete_rows(m, Filter::parse(m, filters)?).await
    }

    /// Counts the rows matching `filters`.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "count"))]
    pub async fn count(&self, model: &str, filters: &Value) -> Result<u64> {
        let m = registry::model(model)?;
        self.store().count(m, &Filter::parse(m, filters)?, self.session_state()).await
    }

    /// An aggregate of `field` over the rows matching `filters`: `count` (non-NULL values), `sum`, `avg`
    /// (numbers), `min`, `max` (numbers and datetimes; text is refused, its order differs by collation),
    /// `sum_length` (characters of a text column; 0 over no rows). `sum`, `min`, `max`, `avg` answer `null`
    /// over no rows. Not cached; a session's read waits for its own pending writes to the model.
    ///
    /// # Errors
    /// As [`Db::query`]; [`Error::InvalidRequest`] for an unknown aggregate or one the column's type does not
    /// take.
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "aggregate"))]
    pub async fn aggregate(&self, model: &str, aggregate: &str, field: &str, filters: &Value) -> Result<Value> {
        use crate::core::exec::Aggregate;
        use crate::core::registry::Kind;
        let m = registry::model(model)?;
        let column = m.column_index(field)?;
        let agg = Aggregate::parse(aggregate).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "unknown aggregate `{}`; use one of count, sum, min, max, avg, sum_length",
                crate::utils::error::shown(aggregate)
            ))
        })?;
        let kind = m.col(column).kind;
        let fits = match agg {
            Aggregate::Count => true,
            Aggregate::Sum | Aggregate::Avg => matches!(kind, Kind::Id | Kind::Int | Kind::Float),
            Aggregate::Min | Aggregate::Max => matches!(kind, Kind::Id | Kind::Int | Kind::Float | Kind::DateTime),
            Aggregate::SumLength => kind == Kind::Text,
        };
        if !fits {
            return Err(Error::InvalidRequest(format!(
                "`{aggregate}` does not apply to `{}.{field}`, which holds {}",
                m.name,
                kind.expected()
            )));
        }
        self.store().aggregate(m, &Filter::parse(m, filters)?, agg, column, self.session_state()).await
    }

    /// The distinct values of `field` among the rows matching `filters` (`SELECT DISTINCT`), NULL first, then
    /// numbers, then text by bytes: the same order on every backend. Not cached; a session's read waits for
    /// its own pending writes to the model.
    ///
    /// # Errors
    /// As [`Db::query`].
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "distinct"))]
    pub async fn distinct(&self, model: &str, field: &str, filters: &Value) -> Result<Vec<Value>> {
        let m = registry::model(model)?;
        let column = m.column_index(field)?;
        self.store().distinct(m, &Filter::parse(m, filters)?, column, self.session_state()).await
    }

    /// The upsert of `db_save`: with a key, the first row (by id) whose `key_field = key_value` gets every key
    /// of `data` and is returned; otherwise (or without a key) a row is created from `data` alone. One
    /// transaction; where the key is unique, a concurrent insert of the same key turns into an update.
    ///
    /// # Errors
    /// As [`Db::query`]; [`Error::InvalidRequest`] for a `null` key value.
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "save"))]
    pub async fn save(&self, model: &str, data: &Value, key: Option<(&str, &Value)>) -> Result<Row> {
        let m = registry::model(model)?;
        let Some((field, value)) = key else {
            return self.insert_row(NewRow::parse(m, data)?).await;
        };
        let kidx = m.column_index(field)?;
        let kcell = Cell::from_json(m, m.col(kidx), value)?;
        if kcell == Cell::Null {
            return Err(Error::InvalidRequest(format!("key_value for `{}.{field}` must not be null", m.name)));
        }
        let obj = data
            .as_object()
            .ok_or_else(|| Error::InvalidRequest(format!("`data` for `{}` must be a JSON object", m.name)))?;
        // Validate both branches up front: the update's changes now, the create's row lazily (a partial
        // `data` is fine when the row exists).
        let changes = if obj.is_empty() { None } else { Some(Changes::parse(m, data)?) };
        let new_row = NewRow::parse(m, data);
        if let Err(e) = &new_row
            && !matches!(e, Error::MissingRequired { .. })
        {
            return Err(e.clone());
        }
        let key = Filter::all().and_eq(kidx, kcell);
        let op = WriteOp::Save { model: m, key, unique: m.is_unique(field), changes, new_row };
        match self.write_op(op).await? {
            WriteOutcome::Row(r) => Ok(r),
            WriteOutcome::Count(_) => Err(Error::internal("a save answered a count")),
        }
    }

    /// `db_get`: like `get`, with a single `order_by` column.
    ///
    /// # Errors
    /// As [`Db::query`].
    pub async fn get(
        &self,
        model: &str,
        filters: &Value,
        limit: Option<u64>,
        order_by: Option<&str>,
        single_result: bool,
    ) -> Result<QueryOutput> {
        let req = QueryRequest {
            query_type: QueryType::Get,
            filters: filters.clone(),
            data: None,
            limit,
            order_by: order_by.map(|o| vec![o.to_owned()]).unwrap_or_default(),
            single_result,
            offset: None,
        };
        self.query(model, &req).await
    }

    /// Inserts many rows of `model` (client-side defaults filled in), validated all first, in transactions
    /// of up to 2,000 rows that bypass the scheduler; returns how many were inserted. For seeding and
    /// imports: a bad row fails the call before anything is written.
    ///
    /// # Errors
    /// Validation errors (nothing written); [`Error::Constraint`] or [`Error::Database`] from a chunk (the
    /// chunks before it stay committed).
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "insert_many"))]
    pub async fn insert_many(&self, model: &str, rows: &[Value]) -> Result<u64> {
        let m = registry::model(model)?;
        let parsed = rows.iter().map(|r| NewRow::parse(m, r)).collect::<Result<Vec<_>>>()?;
        self.store().insert_many(m, parsed).await
    }

    /// Runs a validated write and waits for its commit (through the scheduler unless this handle is direct).
    pub(crate) async fn write_op(&self, op: WriteOp) -> Result<WriteOutcome> {
        self.store().write(op, self.is_direct()).await
    }

    pub(crate) async fn insert_row(&self, row: NewRow) -> Result<Row> {
        match self.write_op(WriteOp::Insert(row)).await? {
            WriteOutcome::Row(r) => Ok(r),
            WriteOutcome::Count(_) => Err(Error::internal("an insert answered a count")),
        }
    }

    pub(crate) async fn update_rows(&self, filter: Filter, changes: Changes) -> Result<u64> {
        Ok(self.write_op(WriteOp::Update { filter, changes }).await?.count().unwrap_or(0))
    }

    pub(crate) async fn delete_rows(&self, model: &'static ModelDef, filter: Filter) -> Result<u64> {
        Ok(self.write_op(WriteOp::Delete { model, filter }).await?.count().unwrap_or(0))
    }

    /// Adds `delta` to `field` of every row matching `filters` (`count = count + 1`); returns rows matched.
    ///
    /// # Errors
    /// As [`Db::update`]; [`Error::InvalidValue`] for a non-numeric field or delta.
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model, op = "increment"))]
    pub async fn increment(&self, model: &str, filters: &Value, field: &str, delta: &Value) -> Result<u64> {
        let op = self.increment_op(model, filters, field, delta)?;
        Ok(self.write_op(op).await?.count().unwrap_or(0))
    }

    /// Validates an increment.
    pub(crate) fn increment_op(&self, model: &str, filters: &Value, field: &str, delta: &Value) -> Result<WriteOp> {
        let m = registry::model(model)?;
        let filter = Filter::parse(m, filters)?;
        let column = m.column_index(field)?;
        let col = m.col(column);
        if !matches!(col.kind, crate::core::registry::Kind::Int | crate::core::registry::Kind::Float) || delta.is_null()
        {
            return Err(Error::InvalidValue {
                model: m.name.into(),
                field: field.into(),
                expected: "a numeric column and a number to add".into(),
                got: delta.to_string(),
            });
        }
        let delta = Cell::from_json(m, col, delta)?;
        Ok(WriteOp::Increment { model: m, filter, column, delta })
    }
}
