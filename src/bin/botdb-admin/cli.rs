//! The command line of `botdb-admin`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Maintenance of a botdb database (SQLite by default, PostgreSQL or MySQL by URL).
///
/// Results are printed as JSON on stdout; logs (RUST_LOG) go to stderr. Exit code 0 on success, 1 on an
/// error (one line on stderr), 2 when `check` finds a problem.
#[derive(Debug, Parser)]
#[command(name = "botdb-admin", version)]
pub(crate) struct Args {
    /// Configuration directory (default.toml, then <BOTDB_PROFILE>.toml). Without it, built-in defaults
    /// and BOTDB__SECTION__KEY environment variables apply.
    #[arg(long, global = true, env = "BOTDB_CONFIG_DIR", value_name = "DIR")]
    pub config: Option<PathBuf>,
    /// Database URL, overriding the configuration (its password is never printed).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// How results are printed: `json` (pretty), `jsonl` (a list one element per line, compact) or
    /// `table` (a list of rows as a table, an object as key/value rows).
    #[arg(long, global = true, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Pretty JSON.
    Json,
    /// One compact JSON value per line (a list's elements).
    Jsonl,
    /// A table.
    Table,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The effective settings (files, then environment, then --database-url), secrets redacted; opens
    /// nothing.
    ///
    /// Example: BOTDB__CACHE__MODELS__LLMUsage__TTL_MS=60000 botdb-admin config show
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Apply, revert or report migrations.
    Migrate {
        /// The migration action.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// The 25 models of the model mapping with their tables and columns.
    Models,
    /// Run one name-based query and print exactly what `db_query` returns.
    Query {
        /// Model name, e.g. Messages.
        model: String,
        /// get, create, update, delete or count.
        #[arg(long = "type", default_value = "get")]
        query_type: String,
        /// Filter as JSON, e.g. '{"chat_id": "abc", "time": {"$gt": 1700000000}}'.
        #[arg(long)]
        filter: Option<String>,
        /// Data as JSON (create, update).
        #[arg(long)]
        data: Option<String>,
        /// Order by a column, '-' for descending; repeatable.
        #[arg(long = "order-by", allow_hyphen_values = true)]
        order_by: Vec<String>,
        /// At most N rows (0: no limit).
        #[arg(long)]
        limit: Option<i64>,
        /// Return the first row or null.
        #[arg(long)]
        single: bool,
        /// Let an update or delete without --filter touch every row of the table.
        #[arg(long)]
        all: bool,
    },
    /// One aggregate of a column over the rows a filter matches: count, sum, min, max, avg, sum_length.
    ///
    /// Example: botdb-admin aggregate LLMUsage sum cost --filter '{"model_name": "deepseek-v3"}'
    Aggregate {
        /// Model name.
        model: String,
        /// count, sum, min, max, avg or sum_length.
        function: String,
        /// The column.
        field: String,
        /// Filter as JSON (default: every row).
        #[arg(long)]
        filter: Option<String>,
    },
    /// The distinct values of a column (NULL first, then numbers, then text by bytes).
    ///
    /// Example: botdb-admin distinct Messages chat_id --filter '{"time": {"$gt": 1.75e9}}'
    Distinct {
        /// Model name.
        model: String,
        /// The column.
        field: String,
        /// Filter as JSON (default: every row).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Upsert like `db_save` and print the row.
    Save {
        /// Model name.
        model: String,
        /// The row's fields as JSON.
        #[arg(long)]
        data: String,
        /// Key field to look the row up by.
        #[arg(long, requires = "key_value")]
        key_field: Option<String>,
        /// Key value as JSON (e.g. '"abc"' or 42).
        #[arg(long, requires = "key_field")]
        key_value: Option<String>,
    },
    /// Store one action record like `store_action_info` and print it.
    StoreAction {
        /// The chat stream as JSON, with at least stream_id and platform.
        #[arg(long)]
        chat_stream: Option<String>,
        /// action_name.
        #[arg(long, default_value = "")]
        name: String,
        /// action_data as JSON.
        #[arg(long)]
        data: Option<String>,
        /// action_prompt_display.
        #[arg(long, default_value = "")]
        display: String,
        /// action_done.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        done: bool,
        /// action_build_into_prompt.
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
        build_into_prompt: bool,
        /// thinking_id (the action id when non-empty).
        #[arg(long, default_value = "")]
        thinking_id: String,
    },
    /// Inspect or flush the read cache.
    Cache {
        /// The cache action.
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Which parts are up (database, Redis, write queue), as JSON even when the database is down. Exit 0 ok,
    /// 3 degraded (Redis), 4 down (the database).
    Health,
    /// Integrity check, pending migrations, missing tables; with --schema also the contract's columns and
    /// index names a table lacks. Exit 2 on a problem.
    Check {
        /// Also compare every table with the schema contract (columns, index names).
        #[arg(long)]
        schema: bool,
    },
    /// After a crash: every write an acknowledgement log (`botdb-loadtest --ack-log PATH`) recorded is in
    /// the database, by key and content, and the integrity check passes. Counts verified, lost,
    /// duplicated and mismatched writes and torn (cut) log lines. Exit 2 on a problem. Read-only.
    ///
    /// Example: botdb-admin --database-url sqlite://run/botdb.sqlite verify --ack-log run/acks.jsonl
    Verify {
        /// The acknowledgement log.
        #[arg(long, value_name = "PATH")]
        ack_log: PathBuf,
    },
    /// Rows (and on SQLite, bytes) per table.
    Stats,
    /// Refresh the query planner's statistics of botdb's tables (`ANALYZE`): run it after a bulk load.
    Analyze,
    /// Delete rows older than a duration by a time column, in small writes so a running bot keeps writing.
    ///
    /// Example: botdb-admin prune Messages --older-than 90d --filter '{"chat_id":"abc"}' --dry-run
    Prune {
        /// Model name, e.g. Messages.
        model: String,
        /// Age: a number with s, m, h or d (e.g. 90d, 12h).
        #[arg(long)]
        older_than: String,
        /// The time column (default: the model's own, e.g. Messages.time).
        #[arg(long)]
        by: Option<String>,
        /// Only rows that also match this filter (JSON).
        #[arg(long)]
        filter: Option<String>,
        /// Rows per delete.
        #[arg(long, default_value_t = 500)]
        batch: u64,
        /// Confirm: delete them.
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
        /// Count what would be deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Give back the space of deleted rows (SQLite `VACUUM`, PostgreSQL `VACUUM`, MySQL `OPTIMIZE TABLE`).
    Vacuum,
    /// SQLite: copy the write-ahead log into the database file and truncate it.
    Checkpoint,
    /// SQLite: a consistent copy of the database in a new file, taken while the bot runs (`VACUUM INTO`), and
    /// beside it `<FILE>.manifest.json` with each table's rows and checksum. (PostgreSQL/MySQL: `export`.)
    ///
    /// Example: botdb-admin backup backups/bot-2026-12-04.sqlite
    Backup {
        /// The new backup file (must not exist).
        file: PathBuf,
    },
    /// Replace the rows of botdb's tables in the database (any backend) with a SQLite backup's, then verify
    /// each table's rows and checksum against the backup (and its manifest, when present). Stop the bot
    /// first: its cache would not see the swap.
    ///
    /// Example: botdb-admin --database-url postgres://postgres@127.0.0.1/bot restore bot.sqlite --dry-run
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Confirm: delete the tables' current rows and restore.
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
        /// Show what would be replaced; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write each table to `DIR/<Model>.jsonl`, one JSON row per line in id order (constant memory).
    ///
    /// Example: botdb-admin export dump/ --tables Messages,ChatStreams
    Export {
        /// The directory (created; existing files are never overwritten).
        dir: PathBuf,
        /// Only these models (comma-separated); default all.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
    /// Insert the rows of `DIR/<Model>.jsonl` files. Every line is validated first (the file and line of the
    /// first bad row are reported and nothing is written); ids already present are skipped, so importing
    /// twice adds nothing.
    ///
    /// Example: botdb-admin --database-url postgres://postgres@127.0.0.1/bot import dump/
    Import {
        /// The directory of an export.
        dir: PathBuf,
        /// Only these models (comma-separated); default every file present.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
    /// Copy every table (or --tables) from one database to another, any backends, keeping ids. Ids the
    /// target holds are skipped (run it again to resume); rows and checksums are compared at the end
    /// (exit 2 when they differ, e.g. because the source changed meanwhile).
    ///
    /// Example: botdb-admin copy --from sqlite://data/bot.sqlite --to postgres://postgres@127.0.0.1/bot
    Copy {
        /// The source database URL (never changed).
        #[arg(long)]
        from: String,
        /// The target database URL (migrated first).
        #[arg(long)]
        to: String,
        /// Only these models (comma-separated); default all.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Show both ends' row counts; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Configuration actions.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Print the effective settings as JSON.
    Show,
}

/// Cache actions.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheAction {
    /// Cache statistics: those running processes published to Redis (every 5 s), when `cache.redis.url` is
    /// set; without Redis only this admin process's own (empty) cache can be seen.
    Stats,
    /// Drop every cached entry, or with --model only those models' (and with --partition only those of one
    /// value of their partition column: a chat's `chat_id`, a `stream_id`, a `person_id`, …). With
    /// `cache.redis.url` set this reaches every running process through the invalidation channel; without
    /// Redis it only affects this admin process, which is useless: running processes keep their in-process
    /// caches until their entries expire.
    ///
    /// Example: botdb-admin cache flush --model Messages,ActionRecords --partition 8f3a…
    Flush {
        /// Only these models (comma-separated or repeated).
        #[arg(long = "model", value_delimiter = ',')]
        models: Vec<String>,
        /// Only the entries of this partition value (e.g. a chat id) of the models given with --model.
        #[arg(long, alias = "chat", requires = "models")]
        partition: Option<String>,
    },
}

/// Migration actions.
#[derive(Debug, Subcommand)]
pub(crate) enum MigrateAction {
    /// Apply pending migrations.
    Up {
        /// Only this many.
        #[arg(short = 'n', long)]
        steps: Option<u32>,
    },
    /// Revert applied migrations (the last one by default). Reverting the first drops the bot's 25 tables
    /// and their data.
    Down {
        /// How many to revert.
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
        /// Confirm: revert them.
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
        /// Print what would be reverted and the rows it would drop; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Every migration and whether it is applied.
    Status,
    /// Revert every migration (dropping botdb's tables, and only those) and apply them again. Destroys all
    /// of botdb's data.
    Fresh {
        /// Confirm the destruction.
        #[arg(long, conflicts_with = "dry_run")]
        yes: bool,
        /// Print what would be dropped and the rows it holds; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
