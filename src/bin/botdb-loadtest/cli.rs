//! The command line of `botdb-loadtest`.

use std::path::PathBuf;

use clap::Parser;

/// Simulates a busy chat bot's database traffic (shared/spec/workload.md) against botdb and, in the same
/// run, against a plain sea-orm baseline (one call per operation, no cache, no batching, same pool and
/// durability), each on an identical fresh copy of a seeded dataset; verifies every acknowledged write; prints
/// a table per operation and writes a JSON report and SVG plots. Targets loopback databases only.
#[derive(Debug, Parser, serde::Serialize)]
#[command(name = "botdb-loadtest", version)]
pub(crate) struct Args {
    /// Open loop at this many incoming messages per second (latency counted from each message's scheduled
    /// time). 0: closed loop at the maximum rate with `--concurrency` message flows. Default: 0.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Message flows in flight in closed-loop mode. Default: 64.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Measured seconds per system. Default: 10.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before measuring, per system. Default: 2.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seed of the dataset and of the operation mix. Default: 42.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Chats in the dataset (20 % of them carry 80 % of the messages). Default: 200.
    #[arg(long, default_value_t = 200)]
    pub chats: usize,
    /// Users (people and relationships) in the dataset. Default: 8000, so the hot keys exceed L1.
    #[arg(long, default_value_t = 8000)]
    pub users: usize,
    /// Seeded messages per chat. Default: 100.
    #[arg(long, default_value_t = 100)]
    pub messages_per_chat: usize,
    /// botdb's message handler submits a message's writes in order and awaits their tickets at the end of
    /// the message (reads in between see them through read-your-writes); `false`: it awaits each write
    /// before the next operation, like the baseline. The baseline always awaits each call: plain sea-orm
    /// has no future that resolves on commit while keeping a caller's writes in order. Default: true.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pipeline: bool,
    /// Run the plain sea-orm baseline too. Default: true (`--compare false` to skip it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub compare: bool,
    /// Run the `ceiling` system too: the row-writes of as many messages as botdb handled, replayed as fast as
    /// the database commits them (the baseline's statements, 1,000 writes per transaction, no reads, no
    /// cache, the same durability; one connection on SQLite, the pool's on a server). Default: true
    /// (`--ceiling false` to skip it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ceiling: bool,
    /// A PostgreSQL or MySQL server URL (loopback); each system gets a fresh database on it. Default: an
    /// embedded SQLite file per system under the work directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// A Redis URL (loopback) for botdb's shared cache tier. Default: none.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The JSON report. Default: report/loadtest.json (SVG plots beside it).
    #[arg(long, default_value = "report/loadtest.json")]
    pub json: PathBuf,
    /// Where the SQLite files live. Default: a temporary directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Record every write botdb acknowledges in this file (JSON lines; a message's lines are written once
    /// all its writes are acknowledged), so that `botdb-admin verify --ack-log PATH` can check the database
    /// after the harness was killed. Default: none.
    #[arg(long, value_name = "PATH")]
    pub ack_log: Option<PathBuf>,
    /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9187) while running. Default: off.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Fail (exit 3) when botdb's read p99 exceeds this many ms.
    #[arg(long)]
    pub max_read_p99_ms: Option<f64>,
    /// Fail (exit 3) when botdb's write-ack p99 exceeds this many ms.
    #[arg(long)]
    pub max_ack_p99_ms: Option<f64>,
    /// Fail (exit 3) when botdb's error rate (errors / operations) exceeds this.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Fail (exit 3) when botdb sustains fewer incoming messages per second.
    #[arg(long)]
    pub min_messages_per_s: Option<f64>,
}
