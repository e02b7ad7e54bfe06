//! Every metric botdb emits: its name (one constant each, used at every emission) and its description.
//! The library only emits; a binary that installs a recorder calls [`describe`] once to attach the
//! descriptions and units (Prometheus `# HELP` lines).

use metrics::Unit;

/// Writes that ran alone because the grouped statement holding them failed (counter).
pub(crate) const BATCH_ISOLATED_WRITES_TOTAL: &str = "botdb_batch_isolated_writes_total";
/// Cache misses that waited for another caller's load of the same key (counter).
pub(crate) const CACHE_COALESCED_TOTAL: &str = "botdb_cache_coalesced_total";
/// Loaded results too large to keep (`cache.max_entry_bytes`): answered, not cached (counter).
pub(crate) const CACHE_TOO_BIG_TOTAL: &str = "botdb_cache_too_big_total";
/// Cache entries evicted, by cause (size, expired) (counter).
pub(crate) const CACHE_EVICTIONS_TOTAL: &str = "botdb_cache_evictions_total";
/// Cache hits, by layer (l1, l2, redis, window) (counter).
pub(crate) const CACHE_HITS_TOTAL: &str = "botdb_cache_hits_total";
/// Database loads made by the cache (counter).
pub(crate) const CACHE_LOADS_TOTAL: &str = "botdb_cache_loads_total";
/// Redis calls that failed or timed out (counter).
pub(crate) const CACHE_REDIS_ERRORS_TOTAL: &str = "botdb_cache_redis_errors_total";
/// Redis values that did not decode (ignored) (counter).
pub(crate) const CACHE_REDIS_GARBAGE_TOTAL: &str = "botdb_cache_redis_garbage_total";
/// Reads asked of the cache (counter).
pub(crate) const CACHE_REQUESTS_TOTAL: &str = "botdb_cache_requests_total";
/// Recent-history windows carried across a commit instead of reloaded (counter).
pub(crate) const CACHE_WINDOWS_CARRIED_TOTAL: &str = "botdb_cache_windows_carried_total";
/// Statements that failed, by op and backend (counter).
pub(crate) const QUERY_ERRORS_TOTAL: &str = "botdb_query_errors_total";
/// Writes committed by the batch writer (counter).
pub(crate) const ROWS_COMMITTED_TOTAL: &str = "botdb_rows_committed_total";
/// Writes that failed (their own error or their batch's) (counter).
pub(crate) const ROWS_REJECTED_TOTAL: &str = "botdb_rows_rejected_total";
/// Writes queued, by priority (gauge).
pub(crate) const BATCH_QUEUE_DEPTH: &str = "botdb_batch_queue_depth";
/// Entries in the in-process cache, by layer (gauge).
pub(crate) const CACHE_ENTRIES: &str = "botdb_cache_entries";
/// Database connections, by pool and state (in_use, idle) (gauge).
pub(crate) const POOL_CONNECTIONS: &str = "botdb_pool_connections";
/// Time to execute and commit one batch (histogram).
pub(crate) const BATCH_FLUSH_SECONDS: &str = "botdb_batch_flush_seconds";
/// Time from COMMIT to the tickets' release (cache work) (histogram).
pub(crate) const BATCH_INVALIDATE_SECONDS: &str = "botdb_batch_invalidate_seconds";
/// How long the oldest write of a batch waited before it ran (histogram).
pub(crate) const BATCH_LINGER_SECONDS: &str = "botdb_batch_linger_seconds";
/// Writes per batch (histogram).
pub(crate) const BATCH_ROWS: &str = "botdb_batch_rows";
/// Statement duration, by op and backend (histogram).
pub(crate) const QUERY_DURATION_SECONDS: &str = "botdb_query_duration_seconds";

/// Attaches descriptions and units to every botdb metric in the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        BATCH_ISOLATED_WRITES_TOTAL,
        Unit::Count,
        "Writes that ran alone because the grouped statement holding them failed"
    );
    metrics::describe_counter!(
        CACHE_COALESCED_TOTAL,
        Unit::Count,
        "Cache misses that waited for another caller's load of the same key"
    );
    metrics::describe_counter!(CACHE_EVICTIONS_TOTAL, Unit::Count, "Cache entries evicted, by cause (size, expired)");
    metrics::describe_counter!(
        CACHE_TOO_BIG_TOTAL,
        Unit::Count,
        "Loaded results larger than cache.max_entry_bytes: answered, not cached"
    );
    metrics::describe_counter!(CACHE_HITS_TOTAL, Unit::Count, "Cache hits, by layer (l1, l2, redis, window)");
    metrics::describe_counter!(CACHE_LOADS_TOTAL, Unit::Count, "Database loads made by the cache");
    metrics::describe_counter!(CACHE_REDIS_ERRORS_TOTAL, Unit::Count, "Redis calls that failed or timed out");
    metrics::describe_counter!(CACHE_REDIS_GARBAGE_TOTAL, Unit::Count, "Redis values that did not decode (ignored)");
    metrics::describe_counter!(CACHE_REQUESTS_TOTAL, Unit::Count, "Reads asked of the cache");
    metrics::describe_counter!(
        CACHE_WINDOWS_CARRIED_TOTAL,
        Unit::Count,
        "Recent-history windows carried across a commit instead of reloaded"
    );
    metrics::describe_counter!(QUERY_ERRORS_TOTAL, Unit::Count, "Statements that failed, by op and backend");
    metrics::describe_counter!(ROWS_COMMITTED_TOTAL, Unit::Count, "Writes committed by the batch writer");
    metrics::describe_counter!(
        ROWS_REJECTED_TOTAL,
        Unit::Count,
        "Writes that failed (their own error or their batch's)"
    );
    metrics::describe_gauge!(BATCH_QUEUE_DEPTH, Unit::Count, "Writes queued, by priority");
    metrics::describe_gauge!(CACHE_ENTRIES, Unit::Count, "Entries in the in-process cache, by layer");
    metrics::describe_gauge!(POOL_CONNECTIONS, Unit::Count, "Database connections, by pool and state (in_use, idle)");
    metrics::describe_histogram!(BATCH_FLUSH_SECONDS, Unit::Seconds, "Time to execute and commit one batch");
    metrics::describe_histogram!(
        BATCH_INVALIDATE_SECONDS,
        Unit::Seconds,
        "Time from COMMIT to the tickets' release (cache work)"
    );
    metrics::describe_histogram!(
        BATCH_LINGER_SECONDS,
        Unit::Seconds,
        "How long the oldest write of a batch waited before it ran"
    );
    metrics::describe_histogram!(BATCH_ROWS, Unit::Count, "Writes per batch");
    metrics::describe_histogram!(QUERY_DURATION_SECONDS, Unit::Seconds, "Statement duration, by op and backend");
}
