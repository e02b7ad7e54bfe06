//! `botdb-loadtest`: botdb's main job. Simulates the chat bot's database traffic against a plain sea-orm
//! baseline and botdb in the same run, verifies every acknowledged write, and reports. See `--help`.

// The per-message flow future (17 operation kinds over two systems) is deep.
#![recursion_limit = "256"]

/// glibc's malloc spent about a fifth of the harness's CPU in contended arenas (perf); mimalloc's per-thread
/// heaps do not contend.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../shared/logging.rs"]
mod logging;

mod acklog;
mod ceiling;
mod cli;
mod report;
mod runner;
mod systems;
mod workload;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use botdb::sea_orm::{ConnectionTrait, Database};
use botdb::{DatabaseUrl, Db, Settings};
use clap::Parser;
use serde_json::json;

use cli::Args;
use report::SystemReport;
use runner::Load;
use systems::System;
use workload::Shape;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    logging::init();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A fresh, seeded database per system; returns their URLs.
async fn prepare(args: &Args, shape: &Shape, dir: &std::path::Path) -> Result<Vec<(String, String)>, BoxError> {
    let mut names = if args.compare { vec!["baseline", "botdb"] } else { vec!["botdb"] };
    if args.ceiling {
        names.push("ceiling");
    }
    let mut out = vec![];
    match &args.database_url {
        None => {
            let template = dir.join("template.sqlite");
            let _ = std::fs::remove_file(&template);
            let mut s = Settings::load(None)?;
            s.database.url = DatabaseUrl::new(format!("sqlite://{}?mode=rwc", template.display()));
            s.preload.enabled = false;
            let db = Db::open(s).await?;
            workload::seed(&db, shape).await?;
            // A live database has planner statistics; a bulk-loaded one has none until analysed.
            db.analyze().await?;
            for name in names {
                let path = dir.join(format!("{name}.sqlite"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                // SQLite's own online copy.
                db.backup_to(&path).await?;
                out.push((name.to_owned(), format!("sqlite://{}?mode=rwc", path.display())));
            }
            db.shutdown().await;
        }
        Some(server) => {
            let admin = Database::connect(server.as_str()).await?;
            for name in names {
                let db_name = format!("botdb_loadtest_{name}");
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {db_name}")).await?;
                admin.execute_unprepared(&format!("CREATE DATABASE {db_name}")).await?;
                let url = DatabaseUrl::new(server.as_str()).with_database(&db_name).expose().to_owned();
                let mut s = Settings::load(None)?;
                s.database.url = DatabaseUrl::new(url.clone());
                s.preload.enabled = false;
                let db = Db::open(s).await?;
                workload::seed(&db, shape).await?;
                db.analyze().await?;
                db.shutdown().await;
                out.push((name.to_owned(), url));
            }
            admin.close().await?;
        }
    }
    Ok(out)
}

fn settings_for(url: &str, redis: Option<&str>) -> Result<Settings, BoxError> {
    let mut s = Settings::load(None)?;
    s.database.url = DatabaseUrl::new(url);
    if let Some(r) = redis {
        s.cache.redis.url = Some(DatabaseUrl::new(r));
        s.cache.redis.key_prefix = format!("botdb-loadtest-{}", std::process::id());
    }
    Ok(s)
}

const SEEDED_USAGE: u64 = 2000;

/// Rows of the verified models in a freshly seeded database: messages, model calls, actions.
fn seeded(shape: &Shape) -> [u64; 3] {
    [(shape.chats * shape.messages_per_chat) as u64, SEEDED_USAGE, (shape.chats * 5) as u64]
}

async fn run_one(name: &str, url: &str, args: &Args, shape: Shape) -> Result<SystemReport, BoxError> {
    let settings = settings_for(url, args.redis_url.as_deref())?;
    let (system, db) = if name == "baseline" {
        (System::Baseline(Db::connect_plain(&settings.database).await?), None)
    } else {
        let db = Db::open(settings.clone()).await?;
        (System::Botdb(db.clone()), Some(db))
    };
    let load = Load {
        rate: args.rate,
        concurrency: args.concurrency,
        pipeline: args.pipeline,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new((args.warmup + args.duration) as u64 * 1000);
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:40}] {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_prefix(name.to_owned());
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let ack_log = match (&args.ack_log, name) {
        (Some(path), "botdb") => Some(acklog::AckLog::create(path, url)?),
        _ => None,
    };
    let rss = runner::PeakRss::start();
    let (rec, measured) = runner::run(system, shape, load, bar, ack_log).await;
    let mut r = report::summarise(&rec, measured);
    r.peak_rss_mb = rss.stop();
    if let Some(db) = &db {
        db.flush().await;
        let cs = db.cache_stats();
        r.cache_hit_ratio = cs.hit_ratio;
        let [reads, hits] = [&rec.repeats[0], &rec.repeats[1]].map(|a| a.load(Ordering::Relaxed));
        r.repeat_hit_ratio = (reads > 0).then(|| hits as f64 / reads as f64);
        if let Some(bs) = db.batch_stats() {
            eprintln!(
                "botdb scheduler: {} batches, mean {:.1} writes, {} folded into inserts, mean flush {:.2} ms, mean invalidate {:.2} ms, mean wait {:.2} ms; cache: {:?}",
                bs.batches,
                bs.mean_batch_rows.unwrap_or(0.0),
                bs.folded_writes,
                bs.mean_flush_ms.unwrap_or(0.0),
                bs.mean_invalidate_ms.unwrap_or(0.0),
                bs.mean_wait_ms.unwrap_or(0.0),
                cs
            );
            r.batched_write_ratio = bs.batched_write_ratio;
            r.mean_batch_rows = bs.mean_batch_rows;
        }
        db.shutdown().await;
    }
    // Verify: every acknowledged insert is in the database, and the database is sound.
    let mut vs = settings_for(url, None)?;
    vs.preload.enabled = false;
    let check = Db::open(vs).await?;
    let seeded = seeded(&shape);
    let acked: Vec<u64> = rec.acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let (mut verified, mut lost) = (0, 0);
    for (i, model) in ["Messages", "LLMUsage", "ActionRecords"].iter().enumerate() {
        let actual = check.count(model, &serde_json::Value::Null).await?;
        let expected = seeded[i] + acked[i];
        verified += actual.saturating_sub(seeded[i]).min(acked[i]);
        lost += expected.saturating_sub(actual);
    }
    r.acked_writes = acked.iter().sum();
    r.rows_verified = verified;
    r.lost_writes = lost;
    r.integrity_ok = check.check().await?.integrity_ok;
    check.shutdown().await;
    report::print_table(name, &r);
    Ok(r)
}

/// The durability the systems ran with: SQLite's `synchronous`, or the server's commit flushing.
async fn durability(url: &str) -> serde_json::Value {
    let Ok(settings) = settings_for(url, None) else { return serde_json::Value::Null };
    if url.starts_with("sqlite") {
        return json!({"sqlite_synchronous": format!("{:?}", settings.database.sqlite_synchronous), "journal_mode": "wal"});
    }
    let Ok(conn) = Database::connect(url).await else { return serde_json::Value::Null };
    let backend = conn.get_database_backend();
    let sql = if url.starts_with("postgres") {
        "SELECT current_setting('synchronous_commit') || ' / fsync ' || current_setting('fsync')"
    } else {
        "SELECT CONCAT('innodb_flush_log_at_trx_commit ', @@innodb_flush_log_at_trx_commit, ' / sync_binlog ', @@sync_binlog)"
    };
    let got = conn.query_one_raw(botdb::sea_orm::Statement::from_string(backend, sql)).await;
    let text = got.ok().flatten().and_then(|r| r.try_get_by_index::<String>(0).ok());
    conn.close().await.ok();
    json!({ "server": text })
}

/// A threshold's outcome: its value, its limit and whether it passed.
fn threshold(name: &str, value: f64, limit: Option<f64>, at_most: bool) -> Option<serde_json::Value> {
    let limit = limit?;
    let pass = if at_most { value <= limit } else { value >= limit };
    Some(json!({"name": name, "value": value, "limit": limit, "pass": pass}))
}

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    let started_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Some(addr) = args.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(&[1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0])?
            .install()?;
        botdb::describe_metrics();
    }
    let shape = Shape {
        chats: args.chats.max(1),
        users: args.users.max(1),
        messages_per_chat: args.messages_per_chat,
        images: 500,
        seed: args.seed,
    };
    let tmp = tempfile::tempdir()?;
    let dir = args.work_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    eprintln!("seeding {} chats × {} messages, {} people …", shape.chats, shape.messages_per_chat, shape.users);
    let dbs = prepare(&args, &shape, &dir).await?;
    let mut systems = Vec::new();
    for (name, url) in dbs.iter().filter(|(n, _)| n != "ceiling") {
        systems.push((name.clone(), run_one(name, url, &args, shape).await?));
    }
    let ceiling = match dbs.iter().find(|(n, _)| n == "ceiling") {
        Some((_, url)) => {
            let handled = systems.iter().find(|(n, _)| n == "botdb").map_or(0.0, |(_, r)| r.messages_per_s);
            let messages = ((handled * args.duration).round() as u64).max(100);
            eprintln!("ceiling: replaying the writes of {messages} messages …");
            Some(ceiling::run(settings_for(url, None)?, shape, messages, seeded(&shape)).await?)
        }
        None => None,
    };
    let backend = match &args.database_url {
        None => "sqlite",
        Some(u) if u.starts_with("postgres") => "postgres",
        Some(_) => "mysql",
    };
    let get = |n: &str| systems.iter().find(|(s, _)| s == n).map(|(_, r)| r);
    let botdb = get("botdb").ok_or("no botdb run")?;
    let speedup = get("baseline").map(|b| botdb.messages_per_s / b.messages_per_s.max(1e-9));
    let ops: u64 = botdb.ops.values().map(|o| o.count + o.errors).sum();
    let thresholds: Vec<serde_json::Value> = [
        threshold("read_p99_ms", botdb.read_latency_us.p99 / 1e3, args.max_read_p99_ms, true),
        threshold("ack_p99_ms", botdb.write_ack_latency_us.p99 / 1e3, args.max_ack_p99_ms, true),
        threshold("error_rate", botdb.errors as f64 / ops.max(1) as f64, args.max_error_rate, true),
        threshold("messages_per_s", botdb.messages_per_s, args.min_messages_per_s, false),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut arguments = serde_json::to_value(&args)?;
    for key in ["database_url", "redis_url"] {
        if let Some(u) = arguments[key].as_str() {
            arguments[key] = json!(DatabaseUrl::new(u).redacted());
        }
    }
    let botdb_url = dbs.iter().find(|(n, _)| n == "botdb").map(|(_, u)| u.clone()).unwrap_or_default();
    let report = json!({
        "run": {
            "version": env!("CARGO_PKG_VERSION"),
            "started_at_utc": started_at,
            "arguments": arguments,
            "durability": durability(&botdb_url).await,
        },
        "thresholds": thresholds,
        "backend": backend,
        "build_profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "duration_s": args.duration,
        "mode": if args.rate > 0.0 { json!({"open_loop_rate": args.rate}) } else { json!({"closed_loop_concurrency": args.concurrency}) },
        "botdb_pipelined_writes": args.pipeline,
        "seed": args.seed,
        "redis": args.redis_url.is_some(),
        "dataset": {"chats": shape.chats, "users": shape.users, "messages": shape.chats * shape.messages_per_chat},
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "botdb_vs_baseline_messages": speedup,
        "botdb_vs_ceiling_row_writes": ceiling.as_ref().map(|c| botdb.row_writes_per_s / c.row_writes_per_s.max(1e-9)),
        "systems": systems
            .iter()
            .map(|(n, r)| (n.clone(), serde_json::to_value(r).unwrap_or_default()))
            .chain(ceiling.iter().map(|c| ("ceiling".to_owned(), serde_json::to_value(c).unwrap_or_default())))
            .collect::<serde_json::Map<_, _>>(),
    });
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    let refs: Vec<(&str, &SystemReport)> = systems.iter().map(|(n, r)| (n.as_str(), r)).collect();
    let plotted = match report::plots(&args.json, &refs) {
        Ok(paths) => paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        Err(e) => {
            eprintln!("warning: plots not written: {e}");
            "none".into()
        }
    };
    if let (Some((_, b)), Some((_, base))) =
        (systems.iter().find(|(n, _)| n == "botdb"), systems.iter().find(|(n, _)| n == "baseline"))
    {
        report::print_comparison(b, base);
    }
    println!();
    for (n, r) in &systems {
        println!(
            "{n:>9}: {:>8.0} messages/s  read p99 {:>8.0} µs  ack p99 {:>8.0} µs  message p50/p99 {:.0}/{:.0} µs  errors {}  lost {}  cache hit {} (repeat {})  batched {}",
            r.messages_per_s,
            r.read_latency_us.p99,
            r.write_ack_latency_us.p99,
            r.message_latency_us.p50,
            r.message_latency_us.p99,
            r.errors,
            r.lost_writes,
            r.cache_hit_ratio.map_or("-".into(), |h| format!("{h:.3}")),
            r.repeat_hit_ratio.map_or("-".into(), |h| format!("{h:.3}")),
            r.batched_write_ratio.map_or("-".into(), |h| format!("{h:.3}")),
        );
    }
    if let Some(c) = &ceiling {
        println!(
            "{:>9}: {:>8.0} row-writes/s ({} writes of {} messages, {} connection(s), {} per transaction)  errors {}  lost {}",
            "ceiling",
            c.row_writes_per_s,
            c.writes,
            c.messages,
            c.connections,
            ceiling::PER_TRANSACTION,
            c.errors,
            c.lost_writes
        );
    }
    if let Some(s) = speedup {
        println!("botdb / baseline messages/s: {s:.1}x");
    }
    if let Some(c) = &ceiling {
        let base = get("baseline").map_or(String::new(), |b| {
            format!(", baseline's {:.2}", b.row_writes_per_s / c.row_writes_per_s.max(1e-9))
        });
        println!(
            "share of the ceiling's row-writes/s: botdb's {:.2}{base}",
            botdb.row_writes_per_s / c.row_writes_per_s.max(1e-9)
        );
    }
    println!("report: {} (plots: {plotted})", args.json.display());
    for t in &thresholds {
        println!(
            "threshold {}: {:.3} (limit {}) {}",
            t["name"].as_str().unwrap_or("?"),
            t["value"].as_f64().unwrap_or(f64::NAN),
            t["limit"],
            if t["pass"] == true { "pass" } else { "FAIL" }
        );
    }
    let failed: Vec<String> = thresholds
        .iter()
        .filter(|t| t["pass"] != true)
        .map(|t| {
            format!(
                "{} {:.3} (limit {})",
                t["name"].as_str().unwrap_or("?"),
                t["value"].as_f64().unwrap_or(f64::NAN),
                t["limit"]
            )
        })
        .collect();
    if systems.iter().any(|(_, r)| r.lost_writes > 0 || !r.integrity_ok)
        || ceiling.as_ref().is_some_and(|c| c.lost_writes > 0 || c.errors > 0)
    {
        eprintln!("error: lost acknowledged writes or a failed integrity check");
        return Ok(ExitCode::from(4));
    }
    if !failed.is_empty() {
        eprintln!("error: thresholds not met: {}", failed.join(", "));
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
