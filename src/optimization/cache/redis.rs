//! The optional Redis tier: shared entries (`SET … PX`, versioned encoding), the shared generation counters
//! (one Redis hash per model) and the invalidation channel. Every call is bounded by a timeout and guarded by
//! a circuit breaker: Redis down, slow or returning garbage is a miss and a metric, never an error or a stall.
//! Calls use one multiplexed connection (deadpool's recycling PINGs on every checkout); the pool serves
//! (re)connection. The connection is made on a thread of its own (`botdb-redis`), so its driver reads each
//! answer as it arrives, however busy the callers' runtime is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncConnectionConfig, aio::MultiplexedConnection};
use deadpool_redis::{Manager, Pool, Runtime};

use crate::config::RedisSettings;
use crate::core::registry::ModelDef;
use crate::core::value::Row;
use crate::utils::error::{Error, Result};
use crate::utils::runtime::Dedicated;

use super::generations::Field;
use super::stats::PartState;

/// The encoding tag of a Redis value: bump when the encoding or row shape changes.
const ENCODING: &[u8] = b"BDB1";

/// Consecutive failures open the breaker; it half-opens for one probe after the cooldown.
#[derive(Debug)]
struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn allow(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        // After the cooldown one caller wins the probe; the others keep skipping Redis.
        now >= until
            && self
                .open_until_ms
                .compare_exchange(until, now + self.cooldown.as_millis() as u64, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Release);
        self.open_until_ms.store(0, Ordering::Release);
    }

    fn failure(&self) {
        if self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= self.threshold {
            self.open_until_ms.store(self.now_ms() + self.cooldown.as_millis() as u64, Ordering::Release);
        }
    }

    fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

/// The version of everything botdb names and stores in Redis: key layout, the select hash
/// (`Select::stable_hash`), stripe numbering and the value encoding. Processes agree exactly when this
/// agrees, whatever their crate versions (a rolling upgrade keeps invalidating both ways); bump it with
/// any change to those, never with a release that leaves them alone.
pub(crate) const FORMAT: &str = "f3";

/// The Redis tier of one handle.
#[derive(Debug)]
pub(super) struct RedisTier {
    client: redis::Client,
    pool: Pool,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// The thread whose runtime drives the connection.
    driver: Dedicated,
    breaker: Breaker,
    timeout: Duration,
    ttl_ms: u64,
    prefix: String,
    /// Set when a write could not bump the shared counters: Redis is not used until a resync.
    pub(super) desynced: AtomicBool,
    /// Calls that failed or timed out.
    pub(super) errors: AtomicU64,
    /// Set once the bus has subscribed and read the shared counters; until then Redis entries are not used
    /// (local counters would not match the shared ones).
    pub(super) synced: AtomicBool,
    /// Counts `mark_desynced` calls: a resync clears `desynced` only if none came meanwhile.
    pub(super) desyncs: AtomicU64,
}

impl RedisTier {
    /// Builds the tier (no connection is made yet; a down Redis only opens the breaker).
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed URL; [`Error::Internal`] when its thread cannot start.
    pub(super) fn new(settings: &RedisSettings, url: &str) -> Result<RedisTier> {
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let cfg =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout * 4)).set_response_timeout(Some(timeout));
        let bad = |e: redis::RedisError| Error::Config(format!("cache.redis.url: {e}"));
        let manager = Manager::new_with_config(url, cfg).map_err(bad)?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout * 4))
            .create_timeout(Some(timeout * 4))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| Error::Config(format!("cache.redis: {e}")))?;
        Ok(RedisTier {
            client: redis::Client::open(url).map_err(bad)?,
            pool,
            conn: Mutex::new(None),
            driver: Dedicated::start("botdb-redis")?,
            breaker: Breaker {
                failures: AtomicU32::new(0),
                open_until_ms: AtomicU64::new(0),
                threshold: settings.breaker_failures.max(1),
                cooldown: Duration::from_millis(settings.breaker_cooldown_ms),
                epoch: Instant::now(),
            },
            timeout,
            ttl_ms: settings.ttl_ms.max(1),
            prefix: format!("{}:{FORMAT}", settings.key_prefix),
            desynced: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            desyncs: AtomicU64::new(0),
        })
    }

    /// The client, for the invalidation bus's dedicated pub/sub connection.
    pub(super) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The invalidation channel.
    pub(super) fn channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    /// `up`, or `degraded` while the breaker is open or the counters are out of sync.
    pub(super) fn state(&self) -> PartState {
        let synced = self.synced.load(Ordering::Acquire) && !self.desynced.load(Ordering::Acquire);
        if self.breaker.is_open() || !synced { PartState::Degraded } else { PartState::Up }
    }

    /// Stops using Redis until the bus resynchronises (a write could not bump the shared counters).
    pub(super) fn mark_desynced(&self) {
        self.desyncs.fetch_add(1, Ordering::AcqRel);
        self.desynced.store(true, Ordering::Release);
    }

    /// Redis calls that failed or timed out so far.
    pub(super) fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether a call may be tried now (the breaker is closed, or half-open for this probe).
    pub(super) fn reachable(&self) -> bool {
        self.breaker.allow()
    }

    /// Whether reads and fills may use Redis now.
    pub(super) fn usable(&self) -> bool {
        self.synced.load(Ordering::Acquire) && !self.desynced.load(Ordering::Acquire) && self.breaker.allow()
    }

    /// Runs one command or pipeline on the shared multiplexed connection, bounded by the timeout.
    async fn run<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let cached = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let conn = match cached {
            Some(c) => c,
            None => {
                let pool = self.pool.clone();
                let connect = self.driver.handle().spawn(async move { pool.get().await });
                match tokio::time::timeout(self.timeout * 4, connect).await {
                    Ok(Ok(Ok(c))) => {
                        let c = deadpool_redis::Connection::take(c);
                        *self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(c.clone());
                        c
                    }
                    _ => {
                        self.fail();
                        return None;
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, call(conn)).await {
            Ok(Ok(v)) => {
                self.breaker.success();
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis call failed");
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    *self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                }
                self.fail();
                None
            }
            Err(_) => {
                self.fail();
                None
            }
        }
    }

    async fn cmd<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        self.run(|mut c| async move { cmd.query_async::<T>(&mut c).await }).await
    }

    fn fail(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::utils::metrics::CACHE_REDIS_ERRORS_TOTAL).increment(1);
        self.breaker.failure();
    }

    /// The key of an entry: prefix, model, the generations it was read under, and the select's hash.
    pub(super) fn key(&self, model: &ModelDef, all: u64, scope: (Field, u64), hash: u128) -> String {
        format!("{}:{}:{all}:{}{}:{hash:032x}", self.prefix, model.table, scope.0.name(), scope.1)
    }

    /// A shared entry, or `None` (absent, Redis unusable, or a value that does not decode: `garbage`).
    pub(super) async fn get(&self, key: &str) -> Option<std::result::Result<Vec<Row>, ()>> {
        let raw: Option<Vec<u8>> = self.cmd(redis::cmd("GET").arg(key).clone()).await?;
        let raw = raw?;
        Some(decode(&raw).ok_or(()))
    }

    /// Stores an entry with the tier's TTL (bounded by `ttl`).
    pub(super) async fn set(&self, key: &str, rows: &[std::sync::Arc<Row>], ttl: Duration) {
        let mut buf = ENCODING.to_vec();
        if serde_json::to_writer(&mut buf, rows).is_err() {
            return;
        }
        let px = (ttl.as_millis() as u64).min(self.ttl_ms).max(1);
        let _: Option<()> = self.cmd(redis::cmd("SET").arg(key).arg(buf).arg("PX").arg(px).clone()).await;
    }

    fn gens_key(&self, model: &ModelDef) -> String {
        format!("{}:gen:{}", self.prefix, model.table)
    }

    /// Bumps shared counters of `model` and announces them on the channel; returns the new values.
    pub(super) async fn bump(&self, model: &ModelDef, model_idx: usize, fields: &[Field]) -> Option<Vec<u64>> {
        self.bump_many(&[(model, model_idx, fields.to_vec())]).await.and_then(|mut v| v.pop())
    }

    /// [`RedisTier::bump`] for the models of one batch at once: every counter raised and every
    /// announcement published in one round trip (a script, so no process sees a counter move before its
    /// announcement is on the channel).
    pub(super) async fn bump_many(&self, items: &[(&ModelDef, usize, Vec<Field>)]) -> Option<Vec<Vec<u64>>> {
        let mut call = BUMP.prepare_invoke();
        call.arg(self.channel());
        for (model, model_idx, fields) in items {
            call.key(self.gens_key(model)).arg(*model_idx).arg(fields.len());
            for f in fields {
                call.arg(f.name());
            }
        }
        let values: Vec<u64> = self.run(|mut c| async move { call.invoke_async::<Vec<u64>>(&mut c).await }).await?;
        let mut values = values.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for (_, _, fields) in items {
            let got: Vec<u64> = values.by_ref().take(fields.len()).collect();
            if got.len() != fields.len() {
                return None;
            }
            out.push(got);
        }
        Some(out)
    }

    /// Raises counters of `model` by the given amounts (a resync bringing Redis up to this process) and
    /// announces their new values.
    pub(super) async fn advance(&self, model: &ModelDef, model_idx: usize, by: &[(Field, u64)]) -> Option<Vec<u64>> {
        let key = self.gens_key(model);
        let mut pipe = redis::pipe();
        for (f, n) in by {
            pipe.cmd("HINCRBY").arg(&key).arg(f.name()).arg(*n);
        }
        let values: Vec<u64> = self.run(|mut c| async move { pipe.query_async::<Vec<u64>>(&mut c).await }).await?;
        let msg = encode_gens(model_idx, by.iter().map(|(f, _)| *f).zip(values.iter().copied()));
        let _: Option<i64> = self.cmd(redis::cmd("PUBLISH").arg(self.channel()).arg(&msg).clone()).await;
        Some(values)
    }

    /// Every shared counter of `model` (absent fields are 0).
    pub(super) async fn fetch_gens(&self, model: &ModelDef) -> Option<Vec<(Field, u64)>> {
        let key = self.gens_key(model);
        let all: Vec<(String, u64)> = self.cmd(redis::cmd("HGETALL").arg(&key).clone()).await?;
        Some(all.into_iter().filter_map(|(f, v)| Some((Field::parse(&f)?, v))).collect())
    }

    /// The hash holding every process's statistics (one field per process; no `KEYS` scan over the
    /// cache's entries is needed to list them).
    fn stats_key(&self) -> String {
        format!("{}:stats", self.prefix)
    }

    /// Publishes this process's statistics as its field of the statistics hash; `stats` carries `at_ms`, and
    /// readers skip (and remove) fields older than `keep`. The hash itself expires `keep` after the last
    /// publication.
    pub(super) async fn publish_stats(&self, id: &str, stats: &str, keep: Duration) {
        let (key, px) = (self.stats_key(), keep.as_millis() as u64);
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg(&key).arg(id).arg(stats).ignore().cmd("PEXPIRE").arg(&key).arg(px).ignore();
        let _: Option<()> = self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await }).await;
    }

    /// Every running process's last published statistics (fields older than `keep` are removed).
    pub(super) async fn fetch_stats(&self, keep: Duration) -> Option<Vec<serde_json::Value>> {
        let all: Vec<(String, String)> = self.cmd(redis::cmd("HGETALL").arg(self.stats_key()).clone()).await?;
        let now = crate::utils::time::now_epoch() * 1000.0;
        let (mut fresh, mut stale) = (Vec::new(), Vec::new());
        for (id, text) in all {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) if v["at_ms"].as_f64().is_some_and(|at| now - at <= keep.as_millis() as f64) => fresh.push(v),
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            let _: Option<i64> = self.cmd(redis::cmd("HDEL").arg(self.stats_key()).arg(stale).clone()).await;
        }
        Some(fresh)
    }

    /// Tells every process to drop its in-process entries. Returns how many other processes' buses received
    /// it (Redis's count of subscribers reached, less this process's own bus), `None` when Redis did not
    /// answer.
    pub(super) async fn publish_flush(&self) -> Option<u64> {
        let channel = self.channel();
        let reached = self.cmd::<i64>(redis::cmd("PUBLISH").arg(&channel).arg("flush").clone()).await?;
        let own = i64::from(self.synced.load(Ordering::Acquire));
        Some((reached - own).max(0) as u64)
    }
}

fn decode(raw: &[u8]) -> Option<Vec<Row>> {
    let body = raw.strip_prefix(ENCODING)?;
    let rows: Vec<Row> = serde_json::from_slice(body).ok()?;
    Some(rows)
}

/// Raises each listed counter by one and publishes `g <model> <field>=<value> …` per model (the format
/// [`encode_gens`] writes). KEYS: one counter hash per model; ARGV: the channel, then per model its index,
/// its field count and the fields. Returns the new values in order.
static BUMP: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"local a, out = 2, {}
for k = 1, #KEYS do
  local msg, n = 'g ' .. ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    local v = redis.call('HINCRBY', KEYS[k], ARGV[a], 1)
    out[#out + 1] = v
    msg = msg .. ' ' .. ARGV[a] .. '=' .. v
    a = a + 1
  end
  redis.call('PUBLISH', ARGV[1], msg)
end
return out",
    )
});

/// `g <model> <field>=<value> …`
pub(super) fn encode_gens(model_idx: usize, fields: impl Iterator<Item = (Field, u64)>) -> String {
    let mut s = format!("g {model_idx}");
    for (f, v) in fields {
        s.push_str(&format!(" {}={v}", f.name()));
    }
    s
}

/// Counters announced for one model: (model index, [(field, value)]).
pub(super) type Announced = (usize, Vec<(Field, u64)>);

/// Parses a channel message: `Some(None)` for `flush`, `Some(Some(..))` for counters.
pub(super) fn decode_message(msg: &str) -> Option<Option<Announced>> {
    if msg == "flush" {
        return Some(None);
    }
    let mut parts = msg.split(' ');
    if parts.next()? != "g" {
        return None;
    }
    let model: usize = parts.next()?.parse().ok().filter(|&m| m < crate::core::registry::models().len())?;
    let mut fields = vec![];
    for p in parts {
        let (f, v) = p.split_once('=')?;
        fields.push((Field::parse(f)?, v.parse().ok()?));
    }
    Some(Some((model, fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_rejected() {
        let m = encode_gens(4, [(Field::All, 3), (Field::Stripe(9), 12)].into_iter());
        assert_eq!(decode_message(&m), Some(Some((4, vec![(Field::All, 3), (Field::Stripe(9), 12)]))));
        assert_eq!(decode_message("flush"), Some(None));
        assert_eq!(decode_message("g 99 all=1"), None);
        assert_eq!(decode_message("hello"), None);
        assert!(decode(b"BDB1[{\"id\":1}]").is_some());
        assert!(decode(b"BDB0[]").is_none());
        assert!(decode(b"BDB1{nope").is_none());
    }
}
