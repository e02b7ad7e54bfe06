//! The engine: connections per backend. SQLite gets one writer connection and a reader pool, each with WAL,
//! the configured `synchronous` and a busy timeout applied to every connection; PostgreSQL and MySQL share
//! one pool for reads and writes (the server groups commits itself).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[cfg(feature = "sqlite")]
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait as _,
};

use crate::config::DatabaseSettings;
use crate::utils::error::{Error, Result};
use crate::utils::retry::{RetryPolicy, retry_busy};

/// A boxed future borrowing a transaction, as write closures return it.
pub(crate) type TxnFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// The connections of one database. Cheap to clone: the pools are shared (`Arc` inside).
#[derive(Clone, Debug)]
pub struct Engine {
    backend: DbBackend,
    /// The settings it was opened with (a dedicated writer pool opens with them too).
    settings: DatabaseSettings,
    reader: DatabaseConnection,
    writer: DatabaseConnection,
    retry: RetryPolicy,
}

use crate::config::sqlite_file_of as sqlite_path;

/// Records every statement's duration (`botdb_query_duration_seconds{op, backend}`) and logs statements
/// slower than `slow_ms` by kind, never with their parameters (rows carry chat contents).
fn observe(conn: &mut DatabaseConnection, backend: DbBackend, slow_ms: u64) {
    let backend_label: &'static str = match backend {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "mysql",
    };
    conn.set_metric_callback(move |info| {
        let sql = info.statement.sql.trim_start();
        let op: &'static str = match sql.get(..6).map(str::to_ascii_uppercase).as_deref() {
            Some("SELECT") => "select",
            Some("INSERT") => "insert",
            Some("UPDATE") => "update",
            Some("DELETE") => "delete",
            _ => "other",
        };
        metrics::histogram!(crate::utils::metrics::QUERY_DURATION_SECONDS, "op" => op, "backend" => backend_label)
            .record(info.elapsed.as_secs_f64());
        if info.failed {
            metrics::counter!(crate::utils::metrics::QUERY_ERRORS_TOTAL, "op" => op, "backend" => backend_label)
                .increment(1);
        }
        if slow_ms > 0 && info.elapsed.as_millis() as u64 >= slow_ms {
            tracing::warn!(
                op,
                backend = backend_label,
                duration_ms = info.elapsed.as_millis() as u64,
                "slow statement"
            );
        }
    });
}

/// Splits the password (percent-decoded) out of a server URL `scheme://user:password@host…`; other URLs
/// come back as they are.
fn without_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return (url.to_owned(), None) };
    let Some((user, encoded)) = rest[..at].split_once(':') else { return (url.to_owned(), None) };
    let bytes = encoded.as_bytes();
    let (mut decoded, mut i) = (Vec::with_capacity(bytes.len()), 0);
    while i < bytes.len() {
        let hex = (bytes[i] == b'%').then(|| encoded.get(i + 1..i + 3)).flatten();
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let password = String::from_utf8_lossy(&decoded).into_owned();
    (format!("{scheme}://{user}@{}", &rest[at + 1..]), Some(password))
}

impl Engine {
    /// Connects as `settings` say. For SQLite the database file's folder is created first.
    ///
    /// # Errors
    /// [`Error::Config`] for an unsupported URL, [`Error::Database`] when the database cannot be reached.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Engine> {
        let url = settings.url.expose();
        let backend = if url.starts_with("sqlite:") {
            DbBackend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbBackend::Postgres
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            DbBackend::MySql
        } else {
            return Err(Error::Config(format!(
                "unsupported database URL `{}`: use sqlite://PATH?mode=rwc, postgres://… or mysql://…",
                settings.url
            )));
        };
        let (compiled, feature) = match backend {
            DbBackend::Sqlite => (cfg!(feature = "sqlite"), "sqlite"),
            DbBackend::Postgres => (cfg!(feature = "postgres"), "postgres"),
            _ => (cfg!(feature = "mysql"), "mysql"),
        };
        if !compiled {
            return Err(Error::Config(format!(
                "`{}` needs botdb's `{feature}` feature, which this build left out",
                settings.url
            )));
        }
        let connect_err = |e: sea_orm::DbErr| Error::Database {
            op: "connect",
            message: format!("{}: {}", settings.url, e.to_string().replace(url, &settings.url.redacted())),
        };
        let retry = settings.retry_policy();
        if backend != DbBackend::Sqlite {
            let mut conn = Database::connect(Self::options(settings, settings.pool_size)).await.map_err(connect_err)?;
            observe(&mut conn, backend, settings.slow_ms);
            return Ok(Engine { backend, settings: settings.clone(), reader: conn.clone(), writer: conn, retry });
        }
        match sqlite_path(url) {
            Some(path) => {
                if let Some(parent) = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Config(format!("cannot create the database folder {}: {e}", parent.display()))
                    })?;
                }
                // The writer first: it creates the file and switches it to WAL before readers open it.
                let mut writer = Database::connect(Self::options(settings, 1)).await.map_err(connect_err)?;
                let mut reader = Database::connect(Self::options(settings, settings.read_pool_size.max(1)))
                    .await
                    .map_err(connect_err)?;
                observe(&mut writer, backend, settings.slow_ms);
                observe(&mut reader, backend, settings.slow_ms);
                Ok(Engine { backend, settings: settings.clone(), reader, writer, retry })
            }
            // An in-memory database exists once per connection: one connection serves everything.
            None => {
                let mut conn = Database::connect(Self::options(settings, 1)).await.map_err(connect_err)?;
                observe(&mut conn, backend, settings.slow_ms);
                Ok(Engine { backend, settings: settings.clone(), reader: conn.clone(), writer: conn, retry })
            }
        }
    }

    fn options(settings: &DatabaseSettings, max: u32) -> ConnectOptions {
        // The password goes to the driver's options, not the URL: sea-orm's connect span prints the URL (at
        // trace level), never those options.
        let (url, password) = without_password(settings.url.expose());
        let mut opt = ConnectOptions::new(url);
        #[cfg(not(any(feature = "postgres", feature = "mysql")))]
        let _ = password;
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        if let Some(pw) = password {
            #[cfg(feature = "postgres")]
            {
                let pw = pw.clone();
                opt.map_sqlx_postgres_opts(move |o| o.password(&pw));
            }
            #[cfg(feature = "mysql")]
            opt.map_sqlx_mysql_opts(move |o| o.password(&pw));
        }
        opt.max_connections(max)
            .min_connections(1)
            .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            // Testing every connection before use costs 7–20 µs per query; a dead one fails its query instead.
            .test_before_acquire(false)
            // sqlx statement logging is off: rows carry chat contents.
            .sqlx_logging(false);
        #[cfg(feature = "sqlite")]
        Self::sqlite_options(&mut opt, settings);
        opt
    }

    /// WAL, `synchronous`, the busy timeout and the statement cache on every SQLite connection.
    #[cfg(feature = "sqlite")]
    fn sqlite_options(opt: &mut ConnectOptions, settings: &DatabaseSettings) {
        use crate::config::Synchronous;
        let sync = match settings.sqlite_synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Off => SqliteSynchronous::Off,
        };
        let busy = Duration::from_millis(settings.busy_timeout_ms);
        let checkpoint = settings.sqlite_wal_autocheckpoint.to_string();
        opt.map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(sync)
                .busy_timeout(busy)
                .create_if_missing(true)
                .pragma("wal_autocheckpoint", checkpoint.clone())
                // Statement journals and sorts in memory, not in temporary files created per statement.
                .pragma("temp_store", "memory")
                // Multi-row statements come in many sizes; each prepared one is kept (see `exec::insert_many`).
                .statement_cache_capacity(512)
        });
    }

    /// For PostgreSQL/MySQL: this engine with writes on a pool of its own, opened on the runtime that calls
    /// this (a socket is served by the runtime that opened it, and a batch writer on its own thread would
    /// otherwise wait for the callers' runtime at every round trip). SQLite: this engine (its connections
    /// run on their own threads already).
    ///
    /// # Errors
    /// [`Error::Database`] when the server cannot be reached.
    pub async fn dedicated_writer(&self, connections: u32) -> Result<Engine> {
        if self.backend == DbBackend::Sqlite {
            return Ok(self.clone());
        }
        let mut writer = Database::connect(Self::options(&self.settings, connections.max(1))).await.map_err(|e| {
            Error::Database {
                op: "connect",
                message: format!(
                    "{}: {}",
                    self.settings.url,
                    e.to_string().replace(self.settings.url.expose(), &self.settings.url.redacted())
                ),
            }
        })?;
        observe(&mut writer, self.backend, self.settings.slow_ms);
        Ok(Engine { writer, ..self.clone() })
    }

    /// SQLite: a stamp that moves when a connection other than botdb's writer commits (`PRAGMA
    /// data_version` on the writer, which botdb's own commits leave alone), with a marker table in the
    /// connection's TEMP schema so that a replaced writer connection (whose counter starts afresh) reads as
    /// moved too. `None` on PostgreSQL/MySQL.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn foreign_commits(&self) -> Result<Option<(bool, i64)>> {
        use sea_orm::{ConnectionTrait, Statement};
        if self.backend != DbBackend::Sqlite {
            return Ok(None);
        }
        let err = |e| Error::Database { op: "data_version", message: format!("{e}") };
        let sql = "SELECT (SELECT COUNT(*) FROM temp.sqlite_master WHERE name = 'botdb_watch'), data_version \
                   FROM pragma_data_version()";
        let row = self
            .writer
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .map_err(err)?
            .ok_or_else(|| Error::internal("PRAGMA data_version answered no row"))?;
        let marked: i64 = row.try_get_by_index(0).map_err(err)?;
        let version: i64 = row.try_get_by_index(1).map_err(err)?;
        if marked == 0 {
            self.writer
                .execute_unprepared("CREATE TEMP TABLE IF NOT EXISTS botdb_watch (x INTEGER)")
                .await
                .map_err(err)?;
        }
        Ok(Some((marked == 0, version)))
    }

    /// The backend in use.
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// A connection for reads (the reader pool).
    pub fn reader(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// The write connection (on SQLite the single writer; elsewhere the shared pool).
    pub fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE` on SQLite) and commits it. A busy, locked or
    /// deadlocked attempt is rolled back and retried with backoff, up to the configured attempts.
    ///
    /// # Errors
    /// The first non-transient error of `f` or of the commit; [`Error::Busy`] when retries ran out.
    pub async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send,
        F: for<'c> Fn(&'c DatabaseTransaction) -> TxnFuture<'c, T> + Send + Sync,
    {
        let result = retry_busy(self.retry, || async {
            let txn = self
                .writer
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .map_err(|e| Error::from_db(op, "", e))?;
            let value = f(&txn).await?;
            txn.commit().await.map_err(|e| match Error::from_db(op, "", e) {
                busy @ Error::Busy { .. } => busy,
                // The statements ran; whether COMMIT took effect is unknown.
                other => Error::Indeterminate(format!("COMMIT failed: {other}")),
            })?;
            Ok(value)
        })
        .await;
        self.after_failure(&result).await;
        result
    }

    /// SQLite: replaces the writer connection after a write failed other than by a constraint or a busy
    /// lock (a full disk, an I/O error, a failed COMMIT). SQLite may roll such a transaction back by itself,
    /// and the driver, whose own ROLLBACK then fails, goes on counting a transaction as open: every later
    /// `BEGIN` became a savepoint inside a transaction that was never committed, and those writes were
    /// acknowledged and lost (found with `scripts/faults.sh disk-full`). A fresh connection has no such
    /// state; the pool opens it with the same settings.
    async fn after_failure<T>(&self, result: &Result<T>) {
        #[cfg(feature = "sqlite")]
        if self.backend == DbBackend::Sqlite && matches!(result, Err(Error::Database { .. } | Error::Indeterminate(_)))
        {
            let pool = self.writer.get_sqlite_connection_pool();
            match tokio::time::timeout(std::time::Duration::from_secs(5), pool.acquire()).await {
                Ok(Ok(conn)) => {
                    if let Err(e) = conn.close().await {
                        tracing::warn!(error = %e, "closing the SQLite writer connection after a failed write");
                    }
                    tracing::warn!("the SQLite writer connection was replaced after a failed write");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the SQLite writer connection could not be taken to replace it")
                }
                Err(_) => tracing::warn!("the SQLite writer connection stayed busy; not replaced"),
            }
        }
        #[cfg(not(feature = "sqlite"))]
        let _ = result;
    }

    /// Connections per pool now: (pool, in use, idle), for the `botdb_pool_connections` gauges.
    pub fn pool_usage(&self) -> Vec<(&'static str, u32, u32)> {
        let usage = |c: &DatabaseConnection| -> (u32, u32) {
            let (size, idle): (u32, u32) = match self.backend {
                #[cfg(feature = "sqlite")]
                DbBackend::Sqlite => {
                    let p = c.get_sqlite_connection_pool();
                    (p.size(), p.num_idle() as u32)
                }
                #[cfg(feature = "postgres")]
                DbBackend::Postgres => {
                    let p = c.get_postgres_connection_pool();
                    (p.size(), p.num_idle() as u32)
                }
                #[cfg(feature = "mysql")]
                DbBackend::MySql => {
                    let p = c.get_mysql_connection_pool();
                    (p.size(), p.num_idle() as u32)
                }
                _ => (0, 0),
            };
            (size.saturating_sub(idle), idle)
        };
        let (ru, ri) = usage(&self.reader);
        if self.backend == DbBackend::Sqlite {
            let (wu, wi) = usage(&self.writer);
            vec![("reader", ru, ri), ("writer", wu, wi)]
        } else {
            vec![("shared", ru, ri)]
        }
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for conn in [&self.reader, &self.writer] {
            if let Err(e) = conn.clone().close().await {
                tracing::warn!(error = %e, "closing a pool failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{sqlite_path, without_password};

    #[test]
    fn passwords_leave_the_url() {
        let split = |u: &str| without_password(u);
        assert_eq!(
            split("postgres://bot:p%40ss%3Aw@127.0.0.1:5432/db?sslmode=disable"),
            ("postgres://bot@127.0.0.1:5432/db?sslmode=disable".into(), Some("p@ss:w".into()))
        );
        assert_eq!(split("mysql://root@127.0.0.1/test"), ("mysql://root@127.0.0.1/test".into(), None));
        assert_eq!(split("sqlite://data/a@b.sqlite"), ("sqlite://data/a@b.sqlite".into(), None));
        assert_eq!(split("postgres://u:a%zz@h/d"), ("postgres://u@h/d".into(), Some("a%zz".into())));
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/a.sqlite?mode=rwc"), Some("data/a.sqlite"));
        assert_eq!(sqlite_path("sqlite:///tmp/a.db"), Some("/tmp/a.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://file?mode=memory"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
