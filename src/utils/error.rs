//! The crate's one error type: every failure a caller can see, each telling what to fix.

use sea_orm::{DbErr, SqlErr};

/// Shorthand for `Result<T, botdb::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in botdb. `Clone`, so one batch failure can reach every waiting caller.
///
/// Validation variants (`UnknownModel` … `InvalidRequest`) are raised before any SQL runs: nothing was written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model name is not one of the 25 names of the model mapping (names are case-sensitive).
    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A filter, `data`, `order_by` or key field names a column the model does not have.
    #[error("unknown field `{field}` on model `{model}`; known fields: {known}")]
    UnknownField {
        /// The model.
        model: String,
        /// The field given.
        field: String,
        /// The model's columns, comma-separated.
        known: String,
    },
    /// A filter uses an operator outside `$gt $gte $lt $lte $ne $in $nin`.
    #[error("unknown operator `{op}` on `{model}.{field}`; use one of $gt, $gte, $lt, $lte, $ne, $in, $nin")]
    UnknownOperator {
        /// The model.
        model: String,
        /// The field.
        field: String,
        /// The operator given.
        op: String,
    },
    /// A value does not fit its column (JSON type, range, length, NULL in a NOT NULL column).
    #[error("invalid value for `{model}.{field}`: expected {expected}, got {got}")]
    InvalidValue {
        /// The model.
        model: String,
        /// The field.
        field: String,
        /// What the column takes.
        expected: String,
        /// What was given (a short description, never a full row).
        got: String,
    },
    /// A create omitted NOT NULL columns that have no client-side default.
    #[error("missing required field(s) on model `{model}`: {fields} (NOT NULL and no default)")]
    MissingRequired {
        /// The model.
        model: String,
        /// The missing fields, comma-separated.
        fields: String,
    },
    /// The request's shape is wrong (a filter that is not an object, a non-array `$in`, a bad limit, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The database rejected a row for a constraint (unique key, NOT NULL, length). Nothing of it was written.
    #[error("constraint violated on `{model}`: {message}")]
    Constraint {
        /// The model.
        model: String,
        /// The database's message.
        message: String,
    },
    /// The database stayed busy or locked through every retry.
    #[error("database busy after {attempts} attempts: {message}")]
    Busy {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// Any other database error (connection, I/O, SQL).
    #[error("database error during {op}: {message}")]
    Database {
        /// What botdb was doing.
        op: &'static str,
        /// The database's message.
        message: String,
    },
    /// The settings are invalid or could not be loaded.
    #[error("configuration error: {0}")]
    Config(String),
    /// A migration failed.
    #[error("migration error: {0}")]
    Migration(String),
    /// The write queue stayed full for the whole submit timeout: the write was not accepted.
    #[error("overloaded: the write queue stayed full for {waited_ms} ms; retry later or raise batch.max_queued")]
    Overloaded {
        /// How long the submit waited.
        waited_ms: u64,
    },
    /// The handle is shutting down: the write was not accepted (or not committed before the deadline).
    #[error("shutting down: {0}")]
    ShuttingDown(String),
    /// The connection failed during COMMIT, or the writer stopped mid-batch: the write may or may not have
    /// been committed. Retry where the table has a natural unique key (the retry is idempotent).
    #[error("outcome unknown (indeterminate): {0}")]
    Indeterminate(String),
    /// The compatibility facade was called before `compat::install`.
    #[error("no botdb handle installed: call botdb::compat::install(db) first")]
    NotInstalled,
}

impl Error {
    /// Wraps a database error met while doing `op`, classifying constraint violations and busy errors.
    pub fn from_db(op: &'static str, model: &str, err: DbErr) -> Self {
        if is_transient(&err) {
            return Error::Busy { attempts: 1, message: err.to_string() };
        }
        if let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() {
            return Error::Constraint { model: model.to_owned(), message };
        }
        let message = err.to_string();
        if is_constraint_message(&message) {
            return Error::Constraint { model: model.to_owned(), message };
        }
        Error::Database { op, message }
    }

    /// True for errors raised by validation, before any SQL ran.
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            Error::UnknownModel { .. }
                | Error::UnknownField { .. }
                | Error::UnknownOperator { .. }
                | Error::InvalidValue { .. }
                | Error::MissingRequired { .. }
                | Error::InvalidRequest(_)
        )
    }
}

fn is_constraint_message(message: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "constraint failed", // SQLite: UNIQUE / NOT NULL constraint failed
        "violates not-null", // PostgreSQL 23502
        "violates unique",   // PostgreSQL 23505
        "value too long",    // PostgreSQL 22001
        "cannot be null",    // MySQL 1048
        "Data too long",     // MySQL 1406
    ];
    MARKERS.iter().any(|m| message.contains(m))
}

/// True when `err` is a transient lock/busy/serialization error worth retrying.
pub fn is_transient(err: &DbErr) -> bool {
    let s = err.to_string();
    s.contains("database is locked")
        || s.contains("database table is locked")
        || s.contains("(code: 5)")
        || s.contains("(code: 6)")
        || s.contains("could not serialize access") // PostgreSQL 40001
        || s.contains("deadlock detected") // PostgreSQL 40P01
        || s.contains("Deadlock found") // MySQL 1213
        || s.contains("Lock wait timeout") // MySQL 1205
}
