//! The typed API for Rust callers: sea-orm entities in and out, over the same validated paths as the
//! name-based API (one implementation of validation, defaults, caching and writes).
//!
//! ```no_run
//! # async fn f(db: botdb::Db) -> botdb::Result<()> {
//! use botdb::entities::messages;
//! use botdb::Where;
//! let recent = db
//!     .find_where(&Where::<messages::Entity>::new().eq(messages::Column::ChatId, "abc").order_desc(messages::Column::Time).limit(8))
//!     .await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use sea_orm::sea_query::Value as SqlValue;
use sea_orm::{ActiveModelTrait, EntityTrait, IdenStatic, Iterable};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::api::db::Db;
use crate::core::data::{Changes, NewRow};
use crate::core::exec::Select;
use crate::core::filter::Filter;
use crate::core::registry::{self, Kind, ModelDef};
use crate::core::value::Row;
use crate::utils::error::{Error, Result};
use crate::utils::time;

/// Conditions, order and limit on entity `E`, built from its columns (compiled to the filter language).
#[derive(Debug, Clone)]
pub struct Where<E: EntityTrait> {
    conds: Vec<(&'static str, Option<&'static str>, Value)>,
    /// `$or` groups and `$not`s, all of which must hold (with `conds`).
    nested: Vec<Nested<E>>,
    order: Vec<String>,
    limit: Option<u64>,
    _entity: PhantomData<E>,
}

impl<E: EntityTrait> Default for Where<E> {
    fn default() -> Self {
        Self { conds: vec![], nested: vec![], order: vec![], limit: None, _entity: PhantomData }
    }
}

/// A nested condition of a [`Where`].
#[derive(Debug, Clone)]
enum Nested<E: EntityTrait> {
    Any(Vec<Where<E>>),
    Not(Box<Where<E>>),
}

macro_rules! ops {
    ($($(#[$doc:meta])* $name:ident => $op:literal),*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, col: E::Column, value: impl Into<Value>) -> Self {
            self.conds.push((col.as_str(), Some($op), value.into()));
            self
        }
    )*};
}

impl<E: EntityTrait> Where<E> {
    /// No condition: every row.
    pub fn new() -> Self {
        Self::default()
    }

    /// `col = value` (`IS NULL` for `Value::Null`).
    #[must_use]
    pub fn eq(mut self, col: E::Column, value: impl Into<Value>) -> Self {
        self.conds.push((col.as_str(), None, value.into()));
        self
    }

    ops! {
        /// `col <> value` (`IS NOT NULL` for `Value::Null`).
        ne => "$ne",
        /// `col > value`.
        gt => "$gt",
        /// `col >= value`.
        gte => "$gte",
        /// `col < value`.
        lt => "$lt",
        /// `col <= value`.
        lte => "$lte",
        /// `col IN (values)`; pass a `Vec`.
        is_in => "$in",
        /// `col NOT IN (values)`; pass a `Vec`.
        not_in => "$nin",
        /// `col` matches a pattern, case-sensitively on every backend: `%` any run of characters, `_` one
        /// character, a backslash escapes the next one (text columns).
        like => "$like",
        /// `col` contains this literal substring, case-sensitively (text columns).
        contains => "$contains"
    }

    /// At least one of `alternatives` holds (their own orders and limits are ignored). SQL's three-valued
    /// logic: a condition on a NULL is not true.
    #[must_use]
    pub fn or(mut self, alternatives: impl IntoIterator<Item = Where<E>>) -> Self {
        self.nested.push(Nested::Any(alternatives.into_iter().collect()));
        self
    }

    /// `condition` does not hold (its order and limit are ignored); a row where it is unknown (a NULL) does
    /// not match either.
    #[must_use]
    pub fn not(mut self, condition: Where<E>) -> Self {
        self.nested.push(Nested::Not(Box::new(condition)));
        self
    }

    /// Ascending order on `col` (after earlier orders).
    #[must_use]
    pub fn order_asc(mut self, col: E::Column) -> Self {
        self.order.push(col.as_str().to_owned());
        self
    }

    /// Descending order on `col` (after earlier orders).
    #[must_use]
    pub fn order_desc(mut self, col: E::Column) -> Self {
        self.order.push(format!("-{}", col.as_str()));
        self
    }

    /// At most `n` rows.
    #[must_use]
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// The JSON filter these conditions make.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when one column has both an equality and an operator.
    pub fn to_json_filter(&self) -> Result<Value> {
        let mut out = Map::new();
        for (col, op, v) in &self.conds {
            match (op, out.get_mut(*col)) {
                (None, None) => {
                    out.insert((*col).to_owned(), v.clone());
                }
                (Some(op), None) => {
                    out.insert((*col).to_owned(), Value::Object(Map::from_iter([((*op).to_owned(), v.clone())])));
                }
                (Some(op), Some(Value::Object(ops))) => {
                    ops.insert((*op).to_owned(), v.clone());
                }
                _ => {
                    return Err(Error::InvalidRequest(format!(
                        "column `{col}` has both an equality and another condition; keep one"
                    )));
                }
            }
        }
        let mut all = Vec::with_capacity(self.nested.len());
        for n in &self.nested {
            all.push(match n {
                Nested::Any(alts) => {
                    let alts = alts.iter().map(Where::to_json_filter).collect::<Result<Vec<_>>>()?;
                    serde_json::json!({ "$or": alts })
                }
                Nested::Not(w) => serde_json::json!({ "$not": w.to_json_filter()? }),
            });
        }
        if !all.is_empty() {
            out.insert("$and".to_owned(), Value::Array(all));
        }
        Ok(Value::Object(out))
    }
}

fn model_of<E: EntityTrait>() -> Result<&'static ModelDef> {
    let table = E::default().table_name();
    registry::model_by_table(table)
        .ok_or_else(|| Error::InvalidRequest(format!("entity table `{table}` is not in the model mapping")))
}

/// Decodes a JSON row into entity `E`'s model.
///
/// # Errors
/// [`Error::Database`] when the row does not fit the entity (a schema mismatch).
pub(crate) fn row_to_model<E>(model: &ModelDef, mut row: Row) -> Result<E::Model>
where
    E: EntityTrait,
    E::Model: DeserializeOwned,
{
    // chrono's serde form of a naive datetime has a `T` where rows have a space.
    for col in model.columns.iter().filter(|c| c.kind == Kind::DateTime) {
        if let Some(Value::String(s)) = row.get_mut(col.name)
            && s.len() > 10
            && s.as_bytes()[10] == b' '
        {
            s.replace_range(10..11, "T");
        }
    }
    serde_json::from_value(Value::Object(row))
        .map_err(|e| Error::Database { op: "decode", message: format!("row of `{}`: {e}", model.name) })
}

fn sql_to_json(v: SqlValue) -> Value {
    match v {
        SqlValue::Bool(b) => b.map_or(Value::Null, Value::Bool),
        SqlValue::Int(i) => i.map_or(Value::Null, Value::from),
        SqlValue::BigInt(i) => i.map_or(Value::Null, Value::from),
        SqlValue::Double(f) => f.map_or(Value::Null, Value::from),
        SqlValue::String(s) => s.map_or(Value::Null, Value::String),
        SqlValue::ChronoDateTime(t) => t.map_or(Value::Null, |t| Value::String(time::format_datetime(&t))),
        other => Value::String(format!("{other:?}")),
    }
}

/// The set fields of an active model as JSON `data` (unset fields are left to defaults).
fn active_to_data<A: ActiveModelTrait>(am: &A) -> Value {
    let mut out = Map::new();
    for col in <A::Entity as EntityTrait>::Column::iter() {
        if let Some(v) = am.get(col).into_value() {
            out.insert(col.as_str().to_owned(), sql_to_json(v));
        }
    }
    Value::Object(out)
}

impl Db {
    /// The row of entity `E` with this id.
    ///
    /// # Errors
    /// As [`Db::query`].
    pub async fn find_by_id<E>(&self, id: i32) -> Result<Option<E::Model>>
    where
        E: EntityTrait,
        E::Model: DeserializeOwned,
    {
        self.find_first::<E>(serde_json::json!({ "id": id })).await
    }

    /// The first row (by id) of entity `E` whose `col` equals `value` (a natural key lookup).
    ///
    /// # Errors
    /// As [`Db::query`].
    pub async fn find_by_key<E>(&self, col: E::Column, value: impl Into<Value>) -> Result<Option<E::Model>>
    where
        E: EntityTrait,
        E::Model: DeserializeOwned,
    {
        let mut filter = Map::new();
        filter.insert(col.as_str().to_owned(), value.into());
        self.find_first::<E>(Value::Object(filter)).await
    }

    async fn find_first<E>(&self, filter: Value) -> Result<Option<E::Model>>
    where
        E: EntityTrait,
        E::Model: DeserializeOwned,
    {
        let m = model_of::<E>()?;
        let rows = self.store().read(&Select::parse(m, &filter, &[], Some(1))?, self.session_state()).await?;
        rows.first().map(|r| row_to_model::<E>(m, Row::clone(r))).transpose()
    }

    /// The rows of entity `E` matching `w`, in its order.
    ///
    /// # Errors
    /// As [`Db::query`].
    pub async fn find_where<E>(&self, w: &Where<E>) -> Result<Vec<E::Model>>
    where
        E: EntityTrait,
        E::Model: DeserializeOwned,
    {
        let m = model_of::<E>()?;
        let rows = self
            .store()
            .read(&Select::parse(m, &w.to_json_filter()?, &w.order, w.limit)?, self.session_state())
            .await?;
        rows.iter().map(|r| row_to_model::<E>(m, Row::clone(r))).collect()
    }

    /// Inserts the set fields of `am` (defaults for the rest) and returns the stored model.
    ///
    /// # Errors
    /// As [`Db::create`].
    pub async fn insert_model<A>(&self, am: A) -> Result<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait,
        <A::Entity as EntityTrait>::Model: DeserializeOwned,
    {
        let m = model_of::<A::Entity>()?;
        let row = self.insert_row(NewRow::parse(m, &active_to_data(&am))?).await?;
        row_to_model::<A::Entity>(m, row)
    }

    /// Applies the set fields of `am` to every row matching `w`; returns the number of rows matched.
    ///
    /// # Errors
    /// As [`Db::update`].
    pub async fn update_where<A>(&self, w: &Where<A::Entity>, am: A) -> Result<u64>
    where
        A: ActiveModelTrait,
    {
        let m = model_of::<A::Entity>()?;
        let filter = Filter::parse(m, &w.to_json_filter()?)?;
        self.update_rows(filter, Changes::parse(m, &active_to_data(&am))?).await
    }

    /// Deletes every row of `E` matching `w`; returns how many.
    ///
    /// # Errors
    /// As [`Db::delete`].
    pub async fn delete_where<E: EntityTrait>(&self, w: &Where<E>) -> Result<u64> {
        let m = model_of::<E>()?;
        self.delete_rows(m, Filter::parse(m, &w.to_json_filter()?)?).await
    }
}
