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

    /// The same server with another database name (the last path segment), query string kept.
    pub fn with_database(&self, name: &str) -> DatabaseUrl {
        let url = self.0.as_str();
        let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let root = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        DatabaseUrl(match query {
            Some(q) => format!("{root}/{name}?{q}"),
            None => format!("{root}/{name}"),
        })
    }

    /// The file of a SQLite URL (`None` for in-memory SQLite and for servers).
    pub fn sqlite_file(&self) -> Option<&str> {
        sqlite_file_of(&self.0)
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
                    return format!("{}{}:***{}", &s[..scheme_end + 3], &userinfo[..colon], &rest[at..]);
                }
            }
        }
        s.clone()
    }
}

/// The file path of a SQLite URL, or `None` for an in-memory database or a server URL.
pub(crate) fn sqlite_file_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory")).then_some(path)
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
    /// SQLite `wal_autocheckpoint` in pages: how much WAL a commit lets grow before it copies the WAL back into
    /// the database file (fsyncing it under `full`). Larger means fewer, longer checkpoints; durability is the
    /// same (the WAL is synced at every commit). Default: 1000 (SQLite's own).
    pub sqlite_wal_autocheckpoint: u32,
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
    /// Statements and public operations slower than this many ms are logged (kind, model, duration; never
    /// row contents); 0 turns the log off. Default: 200.
    pub slow_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::new("sqlite://data/botdb.sqlite?mode=rwc"),
            sqlite_synchronous: Synchronous::Full,
            sqlite_wal_autocheckpoint: 1000,
            busy_timeout_ms: 5000,
            read_pool_size: 4,
            pool_size: 8,
            acquire_timeout_ms: 5000,
            connect_timeout_ms: 5000,
            run_migrations: true,
            retry_attempts: 5,
            retry_base_delay_ms: 10,
            retry_max_delay_ms: 500,
            slow_ms: 200,
        }
    }
}

impl DatabaseSettings {
    /// Settings for `url` with every other value at its default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self { url: DatabaseUrl::new(url), ..Self::default() }
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

/// One model's cache policy (`[cache.models.<ModelName>]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelCachePolicy {
    /// Cache this model's reads. Default: true.
    pub enabled: Option<bool>,
    /// L2 and Redis TTL of this model's entries in ms. Default: `cache.l2_ttl_ms`.
    pub ttl_ms: Option<u64>,
}

/// The optional Redis tier shared by several bot processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`; absent: no Redis tier, and no cross-process invalidation. Default: absent.
    pub url: Option<DatabaseUrl>,
    /// Prefix of every key and of the invalidation channel; botdb appends its Redis format version (not the
    /// crate version), so processes of different releases that name things alike share entries and
    /// invalidations. Default: `botdb`.
    pub key_prefix: String,
    /// Timeout of one Redis call in ms; a slower answer counts as a miss. Default: 50.
    pub timeout_ms: u64,
    /// Pooled connections (deadpool-redis) for (re)connection. Default: 4.
    pub pool_size: usize,
    /// Consecutive failures that open the circuit breaker. Default: 3.
    pub breaker_failures: u32,
    /// How long an open breaker skips Redis before one probe, in ms. Default: 1000.
    pub breaker_cooldown_ms: u64,
    /// TTL of a Redis entry in ms (`SET … PX`). Default: 300000.
    pub ttl_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "botdb".into(),
            timeout_ms: 50,
            pool_size: 4,
            breaker_failures: 3,
            breaker_cooldown_ms: 1000,
            ttl_ms: 300_000,
        }
    }
}

/// The read cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Cache reads at all. Default: true.
    pub enabled: bool,
    /// L1 (small, hot) capacity in bytes of cached rows (estimated, like L2). Default: 8388608 (8 MiB).
    pub l1_max_bytes: u64,
    /// L1 time to live in ms. Default: 30000.
    pub l1_ttl_ms: u64,
    /// L2 capacity in bytes of cached rows, estimated from the rows' heap layout and calibrated against RSS
    /// (a cached `Messages` row holds about 7 KB); the cache's memory bound with `l1_max_bytes`. Default:
    /// 134217728 (128 MiB: the load harness's peak RSS stays under 256 MB; its whole working set, 200 chats'
    /// windows and 16,000 people and relationships, is about twice that, so its hit ratio is below what a
    /// larger bound gives).
    pub l2_max_bytes: u64,
    /// L2 time to live in ms. Default: 300000.
    pub l2_ttl_ms: u64,
    /// Time to live of empty results (negative caching) in ms, in every layer. Default: 5000.
    pub negative_ttl_ms: u64,
    /// Rows kept per partition window (a chat's latest messages) that answer recent-history reads with a
    /// time bound and a limit up to this size. Default: 64.
    pub window_rows: u64,
    /// The largest result, in estimated bytes, that is cached; a larger one is answered and not kept (a
    /// whole-table scan in 2,000-row pages, about 14 MB of `Messages` each, would otherwise evict the hot set
    /// of people and windows a page at a time). 0: no bound. Default: 4194304 (4 MiB: a 64-row
    /// `Messages` window is about 0.45 MB).
    pub max_entry_bytes: u64,
    /// SQLite: how often, in ms, botdb looks for commits by other connections (another process, the bot's
    /// own SQLAlchemy code, an operator's `sqlite3`) through `PRAGMA data_version` on its writer
    /// connection; when one happened, every cached read is dropped. The bound on how long a foreign write
    /// can stay invisible. 0: off (only botdb writes this database). Default: 200.
    pub external_check_ms: u64,
    /// Per-model policy, keyed by model name. Default: every model cached with the layer TTLs.
    pub models: std::collections::BTreeMap<String, ModelCachePolicy>,
    /// The Redis tier.
    pub redis: RedisSettings,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            l1_max_bytes: 8 << 20,
            l1_ttl_ms: 30_000,
            l2_max_bytes: 128 << 20,
            l2_ttl_ms: 300_000,
            negative_ttl_ms: 5_000,
            window_rows: 64,
            max_entry_bytes: 4 << 20,
            external_check_ms: 200,
            models: Default::default(),
            redis: RedisSettings::default(),
        }
    }
}

/// The batch-write scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// Route writes of the name-based, typed and compatibility APIs through the scheduler. `false`: every
    /// write is its own transaction (also available per handle with `Db::direct()`). Default: true.
    pub enabled: bool,
    /// Writer lanes, a thread each (and on PostgreSQL/MySQL a write connection each); a model's writes always
    /// take the same lane, so they apply in submission order. 0 = automatic (1 on SQLite, which has one writer
    /// connection; 4 elsewhere). Default: 0.
    pub writers: usize,
    /// Lower bound of the adaptive batch target, in writes. Default: 32.
    pub min_batch_rows: usize,
    /// Most writes in one transaction. Default: 2000.
    pub max_batch_rows: usize,
    /// The grace after a flush of 8 or more writes for the writes that queued during it (so the writers it
    /// answered join them in the next batch), in ms; a write that reaches an idle writer runs at once.
    /// Default: 0.5.
    pub min_linger_ms: f64,
    /// Upper bound of the adaptive linger: no queued write waits longer than this for its batch, in ms.
    /// Default: 10.
    pub max_linger_ms: f64,
    /// A waiting write climbs one priority level per this many ms, so none starves. Default: 100.
    pub age_step_ms: u64,
    /// Most writes queued at once. Default: 100000.
    pub max_queued: usize,
    /// Most bytes (estimated) queued at once. Default: 134217728 (128 MiB).
    pub max_queued_bytes: u64,
    /// How long a submit waits for queue space before failing `Overloaded`, in ms. Default: 2000.
    pub submit_timeout_ms: u64,
    /// How long `shutdown()` may take to commit what is queued before failing the rest, in ms. Default: 10000.
    pub shutdown_timeout_ms: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            writers: 0,
            min_batch_rows: 32,
            max_batch_rows: 2000,
            min_linger_ms: 0.5,
            max_linger_ms: 10.0,
            age_step_ms: 100,
            max_queued: 100_000,
            max_queued_bytes: 128 << 20,
            submit_timeout_ms: 2000,
            shutdown_timeout_ms: 10_000,
        }
    }
}

/// The preloader that warms the most active chats.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreloadSettings {
    /// Warm at start-up. Default: true.
    pub enabled: bool,
    /// How many of the most recently active chats to warm. Default: 20.
    pub chats: u64,
    /// Loads in flight at once while warming (below live reads). Default: 2.
    pub concurrency: usize,
    /// Every this many ms, reload the most active chats' entries before they expire (0: never). Default: 20000
    /// (below L1's 30 s TTL).
    pub refresh_ms: u64,
    /// Warm a chat in the background the first time a message is written to it (per 10 minutes). Default: true.
    pub on_activity: bool,
}

impl Default for PreloadSettings {
    fn default() -> Self {
        Self { enabled: true, chats: 20, concurrency: 2, refresh_ms: 20_000, on_activity: true }
    }
}

/// Retention: a running handle deletes rows older than an age, periodically, in small deletes (off by
/// default: the bot keeps its history unless told).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Model name → the age in seconds beyond which its rows are deleted, by the model's own time column
    /// (e.g. `Messages = 7776000` keeps 90 days). Empty (the default): nothing is deleted.
    pub models: std::collections::BTreeMap<String, u64>,
    /// How often to prune, in seconds (the first run one interval after opening). Default: 3600.
    pub every_s: u64,
    /// Rows per delete, so the bot's own writes run in between. Default: 500.
    pub batch: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { models: Default::default(), every_s: 3600, batch: 500 }
    }
}

/// All of botdb's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The database.
    pub database: DatabaseSettings,
    /// The read cache.
    pub cache: CacheSettings,
    /// The preloader.
    pub preload: PreloadSettings,
    /// The batch-write scheduler.
    pub batch: BatchSettings,
    /// Background retention (off by default).
    pub retention: RetentionSettings,
}

impl Settings {
    /// Settings for `url` with every other value at its default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self { database: DatabaseSettings::for_url(url), ..Self::default() }
    }

    /// Loads the layers: defaults, then `dir/default.toml` and `dir/<profile>.toml` when a directory is given
    /// (the argument, else `BOTDB_CONFIG_DIR`; the profile from `BOTDB_PROFILE`), then `BOTDB__SECTION__KEY`
    /// environment variables.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing directory, a malformed file, an unknown key or a wrong type.
    pub fn load(dir: Option<&Path>) -> Result<Settings> {
        let dir: Option<PathBuf> =
            dir.map(Path::to_path_buf).or_else(|| std::env::var_os("BOTDB_CONFIG_DIR").map(PathBuf::from));
        let mut fig = Figment::new();
        let profile = std::env::var("BOTDB_PROFILE").ok().filter(|p| !p.is_empty());
        if let (None, Some(p)) = (&dir, &profile) {
            return Err(Error::Config(format!(
                "BOTDB_PROFILE={p} names a profile but no config directory is given (--config or BOTDB_CONFIG_DIR)"
            )));
        }
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                return Err(Error::Config(format!("config directory {} does not exist", dir.display())));
            }
            if !dir.join("default.toml").is_file() {
                return Err(Error::Config(format!("config directory {} has no default.toml", dir.display())));
            }
            fig = fig.merge(Toml::file(dir.join("default.toml")));
            if let Some(profile) = profile {
                let file = dir.join(format!("{profile}.toml"));
                if !file.is_file() {
                    return Err(Error::Config(format!("BOTDB_PROFILE={profile} but {} is missing", file.display())));
                }
                fig = fig.merge(Toml::file(file));
            }
        }
        // (`lowercase(false)` last: each `map` resets it.)
        fig = fig.merge(Env::prefixed("BOTDB__").split("__").map(|k| env_key(k.as_str()).into()).lowercase(false));
        let mut settings: Settings = fig.extract().map_err(|e| Error::Config(e.to_string()))?;
        // An empty Redis URL (`BOTDB__CACHE__REDIS__URL=`) means no Redis.
        if settings.cache.redis.url.as_ref().is_some_and(|u| u.expose().trim().is_empty()) {
            settings.cache.redis.url = None;
        }
        Ok(settings)
    }
}

/// An environment key after splitting (`CACHE.MODELS.LLMUsage.TTL_MS`) in the settings' spelling: sections
/// and fields lowercase, a model name under `cache.models` as given (model names are case-sensitive).
fn env_key(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let model_at = parts.len() > 2 && parts[0].eq_ignore_ascii_case("cache") && parts[1].eq_ignore_ascii_case("models");
    let spelled = parts
        .iter()
        .enumerate()
        .map(|(i, p)| if model_at && i == 2 { (*p).to_owned() } else { p.to_ascii_lowercase() });
    spelled.collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let u = DatabaseUrl::new("postgres://bot:s3cret@db:5432/bot");
        assert_eq!(format!("{u:?}"), "\"postgres://bot:***@db:5432/bot\"");
        assert_eq!(u.to_string(), "postgres://bot:***@db:5432/bot");
        assert_eq!(DatabaseUrl::new("sqlite://data/x.sqlite").redacted(), "sqlite://data/x.sqlite");
        let server = DatabaseUrl::new("postgres://u@h:5432/test?sslmode=disable");
        assert_eq!(server.with_database("other").expose(), "postgres://u@h:5432/other?sslmode=disable");
        assert_eq!(DatabaseUrl::new("mysql://root@h:3306").with_database("x").expose(), "mysql://root@h:3306/x");
    }

    #[test]
    fn config_dir_layers_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), "[database]\nbusy_timeout_ms = 42\n").unwrap();
        let s = Settings::load(Some(dir.path())).unwrap();
        assert_eq!(s.database.busy_timeout_ms, 42);
        assert_eq!(s.database.sqlite_synchronous, Synchronous::Full);
        std::fs::write(dir.path().join("default.toml"), "[database]\nbusy_timeout = 42\n").unwrap();
        assert!(matches!(Settings::load(Some(dir.path())), Err(Error::Config(_))));
        assert!(Settings::load(Some(&dir.path().join("nope"))).is_err());
    }

    #[test]
    fn environment_keys_keep_model_names() {
        assert_eq!(env_key("CACHE.MODELS.LLMUsage.TTL_MS"), "cache.models.LLMUsage.ttl_ms");
        assert_eq!(env_key("DATABASE.URL"), "database.url");
        assert_eq!(env_key("CACHE.REDIS.URL"), "cache.redis.url");
    }

    #[test]
    fn shipped_config_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let fig = Figment::new().merge(Toml::file(dir.join("default.toml")));
        let s: Settings = fig.extract().unwrap();
        assert_eq!(s.database.url, Settings::default().database.url);
        let fig = Figment::new().merge(Toml::file(dir.join("default.toml"))).merge(Toml::file(dir.join("test.toml")));
        let _: Settings = fig.extract().unwrap();
    }
}
