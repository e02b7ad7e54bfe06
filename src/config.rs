//! Settings and their layered loader: built-in defaults → `<dir>/default.toml` → `<dir>/<profile>.toml` →
//! `BOTDB__SECTION__KEY` environment variables. The directory is always explicit (an argument or
//! `BOTDB_CONFIG_DIR`), never the current directory by accident. `config/default.toml` documents every key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use crate::utils::error::{Error, Result};
use crate::utils::retry::RetryPolicy;

/// A database URL that never prints its password (`{:?}` and `{}` redact it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, password included: pass it to a driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let s = &self.0;
        if let Some(scheme_end) = s.find("://") {
            let rest = &s[scheme_end + 3..];
            let auth_end = rest.find('/').unwrap_or(rest.len());
            if let Some(at) = rest[..auth_end].rfind('@') {
                let userinfo = &rest[..at];
                if let Some(colon) = userinfo.find(':') {
                    return format!(
                        "{}{}:***{}",
                        &s[..scheme_end + 3],
                        &userinfo[..colon],
                        &rest[at..]
                    );
                }
            }
        }
        s.clone()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// SQLite's `synchronous` pragma: what a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives a process crash and a power loss (fsync at every commit). The default.
    Full,
    /// Survives a process crash; a power loss may lose the last commits (WAL).
    Normal,
    /// No fsync at all: for throwaway databases only.
    Off,
}

/// Where the data lives and how connections behave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH?mode=rwc`, `postgres://…` or `mysql://…`. The parent folder of a SQLite file is
    /// created. Default: `sqlite://data/botdb.sqlite?mode=rwc`.
    pub url: DatabaseUrl,
    /// SQLite `synchronous`. Default: `full` (an acknowledged write survives a power loss).
    pub sqlite_synchronous: Synchronous,
    /// SQLite busy timeout per connection, in ms: how long a statement waits for another process's lock.
    /// Default: 5000.
    pub busy_timeout_ms: u64,
    /// Reader connections (SQLite: the writer is one more connection). Default: 4.
    pub read_pool_size: u32,
    /// Connections of the shared pool on PostgreSQL/MySQL. Default: 8.
    pub pool_size: u32,
    /// How long to wait for a pooled connection, in ms. Default: 5000.
    pub acquire_timeout_ms: u64,
    /// How long to wait for a new connection, in ms. Default: 5000.
    pub connect_timeout_ms: u64,
    /// Apply pending migrations when the handle opens. Default: true.
    pub run_migrations: bool,
    /// Attempts for a write transaction that meets busy/locked/deadlock errors. Default: 5.
    pub retry_attempts: u32,
    /// First retry delay in ms, doubled per attempt. Default: 10.
    pub retry_base_delay_ms: u64,
    /// Largest retry delay in ms. Default: 500.
    pub retry_max_delay_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::new("sqlite://data/botdb.sqlite?mode=rwc"),
            sqlite_synchronous: Synchronous::Full,
            busy_timeout_ms: 5000,
            read_pool_size: 4,
            pool_size: 8,
            acquire_timeout_ms: 5000,
            connect_timeout_ms: 5000,
            run_migrations: true,
            retry_attempts: 5,
            retry_base_delay_ms: 10,
            retry_max_delay_ms: 500,
        }
    }
}

impl DatabaseSettings {
    /// Settings for `url` with every other value at its default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: DatabaseUrl::new(url),
            ..Self::default()
        }
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retry_attempts.max(1),
            base_delay: Duration::from_millis(self.retry_base_delay_ms),
            max_delay: Duration::from_millis(self.retry_max_delay_ms),
        }
    }
}

/// All of botdb's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The database.
    pub database: DatabaseSettings,
}

impl Settings {
    /// Settings for `url` with every other value at its default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            database: DatabaseSettings::for_url(url),
        }
    }

    /// Loads the layers: defaults, then `dir/default.toml` and `dir/<profile>.toml` when a directory is given
    /// (the argument, else `BOTDB_CONFIG_DIR`; the profile from `BOTDB_PROFILE`), then `BOTDB__SECTION__KEY`
    /// environment variables.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing directory, a malformed file, an unknown key or a wrong type.
    pub fn load(dir: Option<&Path>) -> Result<Settings> {
        let dir: Option<PathBuf> = dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("BOTDB_CONFIG_DIR").map(PathBuf::from));
        let mut fig = Figment::new();
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                return Err(Error::Config(format!(
                    "config directory {} does not exist",
                    dir.display()
                )));
            }
            fig = fig.merge(Toml::file(dir.join("default.toml")));
            if let Ok(profile) = std::env::var("BOTDB_PROFILE") {
                let file = dir.join(format!("{profile}.toml"));
                if !file.is_file() {
                    return Err(Error::Config(format!(
                        "BOTDB_PROFILE={profile} but {} is missing",
                        file.display()
                    )));
                }
                fig = fig.merge(Toml::file(file));
            }
        }
        fig = fig.merge(Env::prefixed("BOTDB__").split("__"));
        fig.extract().map_err(|e| Error::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let u = DatabaseUrl::new("postgres://bot:s3cret@db:5432/bot");
        assert_eq!(format!("{u:?}"), "\"postgres://bot:***@db:5432/bot\"");
        assert_eq!(u.to_string(), "postgres://bot:***@db:5432/bot");
        assert_eq!(
            DatabaseUrl::new("sqlite://data/x.sqlite").redacted(),
            "sqlite://data/x.sqlite"
        );
    }

    #[test]
    fn config_dir_layers_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default.toml"),
            "[database]\nbusy_timeout_ms = 42\n",
        )
        .unwrap();
        let s = Settings::load(Some(dir.path())).unwrap();
        assert_eq!(s.database.busy_timeout_ms, 42);
        assert_eq!(s.database.sqlite_synchronous, Synchronous::Full);
        std::fs::write(
            dir.path().join("default.toml"),
            "[database]\nbusy_timeout = 42\n",
        )
        .unwrap();
        assert!(matches!(
            Settings::load(Some(dir.path())),
            Err(Error::Config(_))
        ));
        assert!(Settings::load(Some(&dir.path().join("nope"))).is_err());
    }

    #[test]
    fn shipped_config_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let fig = Figment::new().merge(Toml::file(dir.join("default.toml")));
        let s: Settings = fig.extract().unwrap();
        assert_eq!(s.database.url, Settings::default().database.url);
        let fig = Figment::new()
            .merge(Toml::file(dir.join("default.toml")))
            .merge(Toml::file(dir.join("test.toml")));
        let _: Settings = fig.extract().unwrap();
    }
}
