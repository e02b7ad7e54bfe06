//! Values: a JSON value checked against its column becomes a [`Cell`]; a cell becomes a bind parameter for
//! the connected backend; a database row becomes a JSON [`Row`] with every column.

use chrono::NaiveDateTime;
use sea_orm::sea_query::Value as SqlValue;
use sea_orm::{DbBackend, QueryResult};
use serde_json::Value;

use crate::core::registry::{ColumnDef, DefaultValue, Kind, ModelDef};
use crate::utils::error::{Error, Result};
use crate::utils::stable_hash::{StableHash, StableHasher};
use crate::utils::time;

/// A row as callers see it: a JSON object holding every column of the table, `id` included, in table order.
pub type Row = serde_json::Map<String, Value>;

/// A read result: shared rows, cheap to clone (a cache hit hands out pointers, never copies of rows).
pub type Rows = std::sync::Arc<[std::sync::Arc<Row>]>;

/// One validated value, typed by its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (`id`, `INTEGER`).
    Int(i64),
    /// An 8-byte float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// A naive timestamp at microsecond precision.
    DateTime(NaiveDateTime),
}

// Floats come from JSON and are never NaN, so equality is an equivalence.
impl Eq for Cell {}

impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        std::mem::discriminant(self).hash(h);
        match self {
            Cell::Null => {}
            Cell::Int(i) => i.hash(h),
            Cell::Float(f) => f.to_bits().hash(h),
            Cell::Bool(b) => b.hash(h),
            Cell::Text(s) => s.hash(h),
            Cell::DateTime(t) => t.hash(h),
        }
    }
}

impl StableHash for Cell {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            Cell::Null => h.u8(0),
            Cell::Int(i) => h.u8(1).u64(*i as u64),
            Cell::Float(f) => h.u8(2).u64(f.to_bits()),
            Cell::Bool(b) => h.u8(3).u8(u8::from(*b)),
            Cell::Text(s) => h.u8(4).str(s),
            Cell::DateTime(t) => h.u8(5).str(&time::format_datetime(t)),
        };
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("a string of {} characters", s.chars().count())
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn invalid(model: &ModelDef, col: &ColumnDef, expected: impl Into<String>, got: String) -> Error {
    Error::InvalidValue { model: model.name.into(), field: col.name.into(), expected: expected.into(), got }
}

/// The most bytes MySQL's `TEXT` (every text column without a `VARCHAR` length) holds.
pub(crate) const MYSQL_TEXT_BYTES: usize = 65_535;

impl Cell {
    /// Checks what only some backends refuse, before any SQL: on MySQL a `TEXT` column holds at most
    /// [`MYSQL_TEXT_BYTES`] bytes (the server would reject the row after the statement ran).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming the limit.
    pub(crate) fn check_backend(&self, model: &ModelDef, col: &ColumnDef, backend: DbBackend) -> Result<()> {
        match self {
            Cell::Text(s) if backend == DbBackend::MySql && col.max_len.is_none() && s.len() > MYSQL_TEXT_BYTES => {
                Err(invalid(
                    model,
                    col,
                    format!("text of at most {MYSQL_TEXT_BYTES} bytes (MySQL's TEXT)"),
                    format!("{} bytes", s.len()),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Checks `v` against `col` and converts it. `null` becomes [`Cell::Null`] (see [`Cell::check_write`]).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when the JSON type or range does not fit the column.
    pub fn from_json(model: &ModelDef, col: &ColumnDef, v: &Value) -> Result<Cell> {
        let bad = || invalid(model, col, col.kind.expected(), describe(v));
        Ok(match (col.kind, v) {
            (_, Value::Null) => Cell::Null,
            (Kind::Id | Kind::Int, Value::Number(n)) => {
                let i = n.as_i64().ok_or_else(bad)?;
                if i32::try_from(i).is_err() {
                    return Err(invalid(model, col, "an integer within the 32-bit range", describe(v)));
                }
                Cell::Int(i)
            }
            (Kind::Float, Value::Number(n)) => Cell::Float(n.as_f64().ok_or_else(bad)?),
            (Kind::Bool, Value::Bool(b)) => Cell::Bool(*b),
            // PostgreSQL cannot store or compare a NUL character; refused everywhere, before any SQL.
            (Kind::Text, Value::String(s)) if s.contains('\0') => {
                return Err(invalid(model, col, "text without NUL characters (U+0000)", describe(v)));
            }
            (Kind::Text, Value::String(s)) => Cell::Text(s.clone()),
            (Kind::DateTime, Value::String(s)) => Cell::DateTime(time::parse_datetime(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        })
    }

    /// Checks a value about to be written: no NULL in a NOT NULL column, no text over `VARCHAR(n)`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`].
    pub fn check_write(&self, model: &ModelDef, col: &ColumnDef) -> Result<()> {
        match self {
            Cell::Null if !col.nullable => {
                Err(invalid(model, col, format!("{} (the column is NOT NULL)", col.kind.expected()), "null".into()))
            }
            Cell::Text(s) => match col.max_len {
                Some(n) if s.chars().count() > n as usize => Err(invalid(
                    model,
                    col,
                    format!("a string of at most {n} characters"),
                    format!("{} characters", s.chars().count()),
                )),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The client-side default of `col`, if it has one.
    pub fn default_for(col: &ColumnDef) -> Option<Cell> {
        Some(match col.default {
            DefaultValue::None => return None,
            DefaultValue::Int(i) => Cell::Int(i),
            DefaultValue::Float(f) => Cell::Float(f),
            DefaultValue::Bool(b) => Cell::Bool(b),
            DefaultValue::Text(s) => Cell::Text(s.to_owned()),
            DefaultValue::NowLocal => Cell::DateTime(time::now_local()),
            DefaultValue::NowUtc => Cell::DateTime(time::now_utc()),
            DefaultValue::NowEpoch => Cell::Float(time::now_epoch()),
            DefaultValue::NowLocalText => Cell::Text(time::format_datetime(&time::now_local())),
        })
    }

    /// The JSON form of this value, as rows carry it.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::from(*i),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Text(s) => Value::String(s.clone()),
            Cell::DateTime(t) => Value::String(time::format_datetime(t)),
        }
    }

    /// The bind parameter for `backend`. `DATETIME` is bound as its text on SQLite (the bot's storage format).
    pub fn to_sql(&self, kind: Kind, backend: DbBackend) -> SqlValue {
        let sqlite = backend == DbBackend::Sqlite;
        match (self, kind) {
            (Cell::Null, Kind::Id | Kind::Int) => SqlValue::Int(None),
            (Cell::Null, Kind::Float) => SqlValue::Double(None),
            (Cell::Null, Kind::Bool) => SqlValue::Bool(None),
            (Cell::Null, Kind::Text) => SqlValue::String(None),
            (Cell::Null, Kind::DateTime) if sqlite => SqlValue::String(None),
            (Cell::Null, Kind::DateTime) => SqlValue::ChronoDateTime(None),
            (Cell::Int(i), _) if sqlite => SqlValue::BigInt(Some(*i)),
            // Range-checked in `from_json`.
            (Cell::Int(i), _) => SqlValue::Int(Some(*i as i32)),
            (Cell::Float(f), _) => SqlValue::Double(Some(*f)),
            (Cell::Bool(b), _) => SqlValue::Bool(Some(*b)),
            (Cell::Text(s), _) => SqlValue::String(Some(s.clone())),
            (Cell::DateTime(t), _) if sqlite => SqlValue::String(Some(time::format_datetime(t))),
            (Cell::DateTime(t), _) => SqlValue::ChronoDateTime(Some(*t)),
        }
    }
}

/// Decodes column `idx` of `row` (selected in table order) as JSON.
///
/// # Errors
/// [`Error::Database`] when the stored value cannot be read as the column's type.
pub(crate) fn decode(row: &QueryResult, idx: usize, col: &ColumnDef, backend: DbBackend) -> Result<Value> {
    let sqlite = backend == DbBackend::Sqlite;
    let err = |e: sea_orm::DbErr| Error::Database { op: "decode", message: format!("column `{}`: {e}", col.name) };
    Ok(match col.kind {
        Kind::Id | Kind::Int if sqlite => row.try_get_by_index::<Option<i64>>(idx).map_err(err)?.into(),
        Kind::Id | Kind::Int => row.try_get_by_index::<Option<i32>>(idx).map_err(err)?.into(),
        Kind::Float => match row.try_get_by_index::<Option<f64>>(idx).map_err(err)? {
            Some(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            None => Value::Null,
        },
        Kind::Bool => row.try_get_by_index::<Option<bool>>(idx).map_err(err)?.into(),
        Kind::Text => row.try_get_by_index::<Option<String>>(idx).map_err(err)?.into(),
        // SQLite keeps DATETIME as text: normalise what parses, keep anything else as stored.
        Kind::DateTime if sqlite => match row.try_get_by_index::<Option<String>>(idx).map_err(err)? {
            Some(s) => Value::String(time::parse_datetime(&s).map_or(s, |t| time::format_datetime(&t))),
            None => Value::Null,
        },
        Kind::DateTime => {
            row.try_get_by_index::<Option<NaiveDateTime>>(idx).map_err(err)?.map(|t| time::format_datetime(&t)).into()
        }
    })
}

/// Decodes a whole row selected with every column in table order.
///
/// # Errors
/// As [`decode`].
pub(crate) fn decode_row(model: &ModelDef, row: &QueryResult, backend: DbBackend) -> Result<Row> {
    let mut out = Row::with_capacity(model.columns.len());
    for (i, col) in model.columns.iter().enumerate() {
        out.insert(col.name.to_owned(), decode(row, i, col, backend)?);
    }
    Ok(out)
}
