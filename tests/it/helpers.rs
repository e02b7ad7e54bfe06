//! Test databases: a fresh database per test on every backend under test. SQLite always runs; PostgreSQL
//! and MySQL run when `BOTDB_TEST_POSTGRES_URL` / `BOTDB_TEST_MYSQL_URL` are set (CI sets them, and under
//! `CI=true` a missing URL fails the test instead of skipping it).

use botdb::sea_orm::{ConnectionTrait, Database};
use botdb::{Db, Settings, Synchronous};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    fn env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("BOTDB_TEST_POSTGRES_URL"),
            Backend::Mysql => Some("BOTDB_TEST_MYSQL_URL"),
        }
    }
}

/// One fresh database, dropped by [`TestDb::close`].
pub(crate) struct TestDb {
    pub db: Db,
    pub backend: Backend,
    /// Server URL and database name to drop at the end (PostgreSQL/MySQL).
    drop: Option<(String, String)>,
    /// Keeps a SQLite database's folder alive until the test ends.
    _dir: Option<tempfile::TempDir>,
}

fn unique_name() -> String {
    format!("botdb_t_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// Settings for a fresh database of `backend`, or `None` when that backend is not under test.
pub(crate) async fn fresh_settings(
    backend: Backend,
) -> Option<(Settings, Option<(String, String)>, Option<tempfile::TempDir>)> {
    match backend.env() {
        None => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}/bot.sqlite?mode=rwc", dir.path().display());
            let mut s = Settings::for_url(url);
            s.database.sqlite_synchronous = Synchronous::Normal;
            Some((s, None, Some(dir)))
        }
        Some(var) => {
            let Ok(server) = std::env::var(var) else {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{var} must be set under CI=true");
                eprintln!("skipping {backend:?}: {var} is not set");
                return None;
            };
            let name = unique_name();
            let admin = Database::connect(&server).await.expect("connect to the test server");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create database");
            admin.close().await.ok();
            let s = Settings::for_url(botdb::DatabaseUrl::new(server.as_str()).with_database(&name).expose());
            Some((s, Some((server, name)), None))
        }
    }
}

pub(crate) async fn open(backend: Backend) -> Option<TestDb> {
    let (settings, drop, dir) = fresh_settings(backend).await?;
    let db = Db::open(settings).await.expect("open test database");
    Some(TestDb { db, backend, drop, _dir: dir })
}

impl TestDb {
    /// A SQLite test database opened by the caller (with settings of its own).
    pub(crate) fn wrap(db: Db, dir: Option<tempfile::TempDir>) -> TestDb {
        TestDb { db, backend: Backend::Sqlite, drop: None, _dir: dir }
    }

    pub(crate) async fn close(self) {
        self.db.shutdown().await;
        if let Some((server, name)) = self.drop {
            let admin = Database::connect(&server).await.expect("connect to the test server");
            let force = if self.backend == Backend::Postgres { " WITH (FORCE)" } else { "" };
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}")).await.expect("drop");
            admin.close().await.ok();
        }
    }
}

/// Generates one test per backend for each listed `async fn NAME(t: &TestDb)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { $crate::helpers::run($crate::helpers::Backend::Sqlite, |t| Box::pin(super::$name(t))).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { $crate::helpers::run($crate::helpers::Backend::Postgres, |t| Box::pin(super::$name(t))).await })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { $crate::helpers::run($crate::helpers::Backend::Mysql, |t| Box::pin(super::$name(t))).await })*
        }
    };
}
pub(crate) use backend_tests;

pub(crate) async fn run<F>(backend: Backend, f: F)
where
    F: for<'a> FnOnce(&'a TestDb) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>,
{
    let Some(t) = open(backend).await else { return };
    f(&t).await;
    t.close().await;
}

/// A valid value of `kind` for generated rows.
pub(crate) fn sample(kind: botdb::Kind, i: i64) -> serde_json::Value {
    use botdb::Kind;
    use serde_json::json;
    match kind {
        Kind::Id | Kind::Int => json!(i),
        Kind::Float => json!(1_700_000_000.25 + i as f64),
        Kind::Bool => json!(i.rem_euclid(2) == 0),
        Kind::Text => json!(format!("v{i}")),
        Kind::DateTime => json!(format!("2025-06-0{} 12:34:56.123456", 1 + i % 9)),
    }
}

/// Required fields of `model` filled with [`sample`] values.
pub(crate) fn required_data(model: &botdb::ModelDef, i: i64) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for c in model.columns.iter().filter(|c| c.is_required()) {
        m.insert(c.name.to_owned(), sample(c.kind, i));
    }
    serde_json::Value::Object(m)
}
