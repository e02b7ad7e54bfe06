//! The crate's one error type: every failure a caller can see, each telling what to fix.

use sea_orm::DbErr;

/// Shorthand for `Result<T, botdb::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in botdb. `Clone`, so one batch failure can reach every waiting caller.
///
/// Validation variants (`UnknownModel` … `InvalidRequest`) are raised before any SQL runs: nothing was written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model name is not one of the 25 names of the model mapping (names are case-sensitive).
    #[error("unknown model `{}`; known models: {known}", shown(name))]
    UnknownModel {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A filter, `data`, `order_by` or key field names a column the model does not have.
    #[error("unknown field `{}` on model `{model}`; known fields: {known}", shown(field))]
    UnknownField {
        /// The model.
        model: String,
        /// The field given.
        field: String,
        /// The model's columns, comma-separated.
        known: String,
    },
    /// A filter uses an operator outside `$gt $gte $lt $lte $ne $in $nin $like $contains`.
    #[error(
        "unknown operator `{}` on `{model}.{}`; use one of $gt, $gte, $lt, $lte, $ne, $in, $nin, $like, $contains",
        shown(op),
        shown(field)
    )]
    UnknownOperator {
        /// The model.
        model: String,
        /// The field.
        field: String,
        /// The operator given.
        op: String,
    },
    /// A value does not fit its column (JSON type, range, length, NULL in a NOT NULL column).
    #[error("invalid value for `{model}.{}`: expected {expected}, got {got}", shown(field))]
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
    /// A broken invariant inside botdb (a bug, not the caller's fault): please report it with the message.
    #[error("internal error (a botdb bug; please report it): {0}")]
    Internal(String),
    /// The compatibility facade was called before `compat::install`.
    #[error("no botdb handle installed: call botdb::compat::install(db) first")]
    NotInstalled,
}

/// A caller-given name as an error message shows it: on one line (control characters escaped, so a
/// newline cannot forge a second line of output) and at most [`SHOWN_CHARS`] characters.
pub(crate) fn shown(name: &str) -> String {
    let mut out: String = name.chars().flat_map(char::escape_debug).take(SHOWN_CHARS).collect();
    if name.chars().flat_map(char::escape_debug).nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The most characters of a caller-given name an error message shows.
const SHOWN_CHARS: usize = 200;

impl Error {
    /// Wraps a database error met while doing `op`, classifying it by the driver's own code (SQLSTATE on
    /// PostgreSQL, the error number on MySQL, the extended result code on SQLite), never by message text:
    /// busy/locked/deadlock/serialization failures become [`Error::Busy`] (retried), constraint violations
    /// [`Error::Constraint`], everything else [`Error::Database`].
    pub(crate) fn from_db(op: &'static str, model: &str, err: DbErr) -> Self {
        let message = err.to_string();
        match classify(&err) {
            Class::Transient => Error::Busy { attempts: 1, message },
            Class::Constraint => Error::Constraint { model: model.to_owned(), message: without_values(&message) },
            Class::Other => Error::Database { op, message },
        }
    }

    /// A broken invariant of botdb itself (a bug, never the caller's fault).
    pub(crate) fn internal(what: impl Into<String>) -> Self {
        Error::Internal(what.into())
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

/// A constraint message without the row values some drivers quote (MySQL: `Duplicate entry 'v' for key
/// 'k'`; PostgreSQL's `Key (c)=(v)` detail): errors and logs never carry row contents.
fn without_values(message: &str) -> String {
    let mut out = message.to_owned();
    if let (Some(start), Some(end)) = (out.find("Duplicate entry '"), out.rfind("' for key")) {
        let from = start + "Duplicate entry '".len();
        if from <= end {
            out.replace_range(from - 1..end + 1, "(value withheld)");
        }
    }
    if let Some(at) = out.find("Key (") {
        out.truncate(at);
        out.push_str("Key (value withheld)");
    }
    out
}

/// What a driver error means for botdb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Busy, locked, deadlock, serialization failure: worth retrying.
    Transient,
    /// A constraint (unique, NOT NULL, length, check, foreign key) rejected the row.
    Constraint,
    /// Anything else.
    Other,
}

/// Classifies a database error by its driver code.
fn classify(err: &DbErr) -> Class {
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    {
        use sea_orm::RuntimeErr;
        use sea_orm::sqlx;
        let (DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))) = err
        else {
            return Class::Other;
        };
        let sqlx::Error::Database(e) = &**e else { return Class::Other };
        #[cfg(feature = "mysql")]
        if let Some(my) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            return mysql_class(my.number());
        }
        let code = e.code().unwrap_or_default();
        #[cfg(feature = "postgres")]
        if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
            return sqlstate_class(&code);
        }
        #[cfg(feature = "sqlite")]
        if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            return sqlite_class(code.parse().unwrap_or(-1));
        }
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    let _ = err;
    Class::Other
}

/// SQLite extended result codes: the primary code is the low byte.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
fn sqlite_class(extended: i64) -> Class {
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const CONSTRAINT: i64 = 19;
    match extended & 0xff {
        BUSY | LOCKED => Class::Transient,
        CONSTRAINT => Class::Constraint,
        _ => Class::Other,
    }
}

/// PostgreSQL SQLSTATE: class 23 (integrity constraint), 22001 (value too long) reject the row; 40001
/// (serialization failure), 40P01 (deadlock) and 55P03 (lock not available) are transient.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn sqlstate_class(code: &str) -> Class {
    match code {
        "40001" | "40P01" | "55P03" => Class::Transient,
        "22001" => Class::Constraint,
        c if c.starts_with("23") => Class::Constraint,
        _ => Class::Other,
    }
}

/// MySQL/MariaDB error numbers.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
fn mysql_class(number: u16) -> Class {
    match number {
        // 1205 lock wait timeout, 1213 deadlock.
        1205 | 1213 => Class::Transient,
        // 1022/1062/1169/1586 duplicate key, 1048 column cannot be null, 1364 no default value, 1406 data too
        // long, 1451/1452 foreign key, 3819 check constraint.
        1022 | 1062 | 1169 | 1586 | 1048 | 1364 | 1406 | 1451 | 1452 | 3819 => Class::Constraint,
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_codes_classify_without_reading_messages() {
        assert_eq!(sqlite_class(5), Class::Transient);
        assert_eq!(sqlite_class(517), Class::Transient, "SQLITE_BUSY_SNAPSHOT");
        assert_eq!(sqlite_class(2067), Class::Constraint, "SQLITE_CONSTRAINT_UNIQUE");
        assert_eq!(sqlite_class(1299), Class::Constraint, "SQLITE_CONSTRAINT_NOTNULL");
        assert_eq!(sqlite_class(1), Class::Other);
        assert_eq!(sqlstate_class("23505"), Class::Constraint);
        assert_eq!(sqlstate_class("23502"), Class::Constraint);
        assert_eq!(sqlstate_class("22001"), Class::Constraint);
        assert_eq!(sqlstate_class("40P01"), Class::Transient);
        assert_eq!(sqlstate_class("42P01"), Class::Other);
        assert_eq!(mysql_class(1213), Class::Transient);
        assert_eq!(mysql_class(1062), Class::Constraint);
        assert_eq!(mysql_class(1146), Class::Other);
        // A message that merely mentions a constraint is not one.
        let e = Error::from_db("x", "M", DbErr::Custom("UNIQUE constraint failed: database is locked".into()));
        assert!(matches!(e, Error::Database { .. }), "{e:?}");
    }

    #[test]
    fn caller_given_names_are_shown_on_one_line_and_bounded() {
        let forged = Error::UnknownModel { name: "x\nerror: forged".into(), known: "A".into() }.to_string();
        assert!(!forged.contains('\n') && forged.contains("x\\nerror: forged"), "{forged}");
        let long = "f".repeat(10_000);
        let e = Error::UnknownField { model: "M".into(), field: long, known: "a".into() }.to_string();
        assert!(e.len() < 300 && e.contains(&format!("{}…", "f".repeat(SHOWN_CHARS))), "{e}");
        let e = Error::UnknownOperator { model: "M".into(), field: "a\rb".into(), op: "$x\u{0}".into() }.to_string();
        assert!(!e.contains('\r') && !e.contains('\0'), "{e}");
        assert_eq!(shown("plain_name"), "plain_name");
        assert_eq!(
            without_values("Duplicate entry 'secret' for key 'person_id'"),
            "Duplicate entry (value withheld) for key 'person_id'"
        );
        assert_eq!(without_values("x. Key (person_id)=(secret) already exists."), "x. Key (value withheld)");
        assert_eq!(without_values("UNIQUE constraint failed: t.c"), "UNIQUE constraint failed: t.c");
    }
}
