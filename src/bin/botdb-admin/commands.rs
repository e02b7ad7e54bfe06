//! What each `botdb-admin` command does.

use std::process::ExitCode;

use botdb::{ActionInfo, Compat, Db, Error, Result, Settings};
use serde_json::{Value, json};

use crate::cli::{Args, CacheAction, Command, ConfigAction, MigrateAction};

/// `90d`, `12h`, `30m`, `45s` or a number of seconds.
fn parse_age(s: &str) -> Result<std::time::Duration> {
    let (n, unit) = s.trim().split_at(s.trim().find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.trim().len()));
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if per > 0 => Ok(std::time::Duration::from_secs(n.saturating_mul(per))),
        _ => Err(Error::InvalidRequest(format!(
            "--older-than {}: give a number with s, m, h or d (e.g. 90d)",
            s.chars().flat_map(char::escape_debug).take(40).collect::<String>()
        ))),
    }
}

/// Parses an option's JSON, refusing an object that names a key twice (plain JSON parsing keeps the last one,
/// silently dropping the other).
fn parse_json(what: &str, s: &str) -> Result<Value> {
    let Unique(v) =
        serde_json::from_str(s).map_err(|e| Error::InvalidRequest(format!("--{what} is not valid JSON: {e}")))?;
    Ok(v)
}

/// A JSON value whose objects name each key once.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Unique;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, b: bool) -> std::result::Result<Unique, E> {
                Ok(Unique(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> std::result::Result<Unique, E> {
                Ok(Unique(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> std::result::Result<Unique, E> {
                Ok(Unique(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> std::result::Result<Unique, E> {
                Ok(Unique(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Unique, E> {
                Ok(Unique(Value::String(s.to_owned())))
            }
            fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
                Ok(Unique(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Unique, A::Error> {
                let mut out = Vec::new();
                while let Some(Unique(v)) = a.next_element()? {
                    out.push(v);
                }
                Ok(Unique(Value::Array(out)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> std::result::Result<Unique, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    let Unique(v) = a.next_value()?;
                    if out.contains_key(&k) {
                        let shown: String = k.chars().flat_map(char::escape_debug).take(60).collect();
                        return Err(serde::de::Error::custom(format!("the key \"{shown}\" appears twice")));
                    }
                    out.insert(k, v);
                }
                Ok(Unique(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Prints JSON on stdout; a closed pipe (`botdb-admin stats | head -1`) ends the output quietly.
/// The output format (`--format`), set once by `run`.
static FORMAT: std::sync::OnceLock<crate::cli::Format> = std::sync::OnceLock::new();

/// A value as `--format` asks: pretty JSON, JSON lines, or a table.
fn render(v: &Value) -> String {
    use crate::cli::Format;
    let compact = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (FORMAT.get().copied().unwrap_or(Format::Json), v) {
        (Format::Jsonl, Value::Array(items)) => items.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
        (Format::Jsonl, other) => other.to_string(),
        (Format::Table, Value::Array(items)) if items.is_empty() => "(no rows)".to_owned(),
        (Format::Table, Value::Array(items)) if items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items.iter().filter_map(Value::as_object) {
                for k in item.keys() {
                    if !columns.contains(&k) {
                        columns.push(k);
                    }
                }
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(columns.iter().map(|c| c.as_str()));
            for item in items {
                t.add_row(columns.iter().map(|c| item.get(c.as_str()).map_or(String::new(), compact)));
            }
            t.to_string()
        }
        (Format::Table, Value::Object(o)) => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(["field", "value"]);
            for (k, val) in o {
                t.add_row([k.clone(), compact(val)]);
            }
            t.to_string()
        }
        (Format::Table, Value::Array(items)) => items.iter().map(compact).collect::<Vec<_>>().join("\n"),
        (Format::Table, other) => compact(other),
        (Format::Json, other) => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

pub(crate) fn print(v: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    let v = serde_json::to_value(v).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let s = render(&v);
    match writeln!(std::io::stdout().lock(), "{s}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Internal(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn settings_of(args: &Args) -> Result<Settings> {
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(url) = &args.database_url {
        settings.database.url = botdb::DatabaseUrl::new(url.clone());
    }
    Ok(settings)
}

async fn open(args: &Args, run_migrations: bool) -> Result<Db> {
    let mut settings = settings_of(args)?;
    settings.database.run_migrations &= run_migrations;
    if matches!(
        args.command,
        Command::Backup { .. }
            | Command::Restore { .. }
            | Command::Export { .. }
            | Command::Import { .. }
            | Command::Verify { .. }
    ) {
        for_transfer(&mut settings);
    }
    Db::open(settings).await
}

/// Settings for a handle that moves whole tables: one reader connection (each SQLite connection keeps a page
/// cache of its own, and a scan fills every connection it rotates through: 121 MB for a 400k-row copy with
/// the default pool, against a flat export's 42 MB), no preload, no retention.
fn for_transfer(settings: &mut Settings) {
    settings.database.read_pool_size = 1;
    settings.preload.enabled = false;
    settings.retention.models.clear();
}

/// `health` when the database cannot even be opened: still JSON on stdout, exit 4.
fn health_down(e: &Error) -> ExitCode {
    let _ = print(&json!({"status": "down", "database": "down", "error": e.to_string()}));
    eprintln!("error: the database is down: {e}");
    ExitCode::from(4)
}

/// What reverting migrations would do: the target, the migrations reverted (newest first), and the rows in
/// the tables they drop.
async fn revert_plan(db: &Db, steps: Option<u32>) -> Result<Value> {
    let applied: Vec<String> =
        db.migrate_status().await?.into_iter().filter(|m| m.applied).map(|m| m.name).rev().collect();
    let revert: Vec<String> = applied.into_iter().take(steps.map_or(usize::MAX, |n| n as usize)).collect();
    // The first migration creates the bot's tables: reverting it drops them.
    let drops_tables = revert.iter().any(|m| m.ends_with("_create_tables"));
    let tables: Vec<Value> = if drops_tables {
        db.stats().await?.into_iter().map(|t| json!({"table": t.table, "rows": t.rows})).collect()
    } else {
        Vec::new()
    };
    Ok(json!({"target": db.settings().database.url.redacted(), "revert": revert, "drops": tables}))
}

/// Prints the plan and says whether to go on: with `--dry-run`, no; without `--yes`, an error naming the target
/// and what would go.
fn confirmed(plan: &Value, verb: &str, yes: bool, dry_run: bool) -> Result<bool> {
    if dry_run {
        print(plan)?;
        return Ok(false);
    }
    if yes {
        return Ok(true);
    }
    let rows: u64 = plan["drops"].as_array().map_or(0, |t| t.iter().filter_map(|t| t["rows"].as_u64()).sum());
    let tables = plan["drops"].as_array().map_or(0, Vec::len);
    Err(Error::InvalidRequest(format!(
        "`{verb}` on {} reverts {} migration(s), dropping {tables} table(s) holding {rows} row(s); add --yes to confirm (--dry-run shows the plan)",
        plan["target"].as_str().unwrap_or("?"),
        plan["revert"].as_array().map_or(0, Vec::len),
    )))
}

async fn wait_for_bus(db: Db) -> Db {
    for _ in 0..50 {
        if db.redis_state() != botdb::PartState::Degraded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    db
}

/// Reports a table's progress on a terminal's stderr (nothing when stderr is a file or a pipe).
fn progress() -> impl Fn(&str, u64) + Send + Sync {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    move |model: &str, rows: u64| {
        if tty {
            eprint!("\r{model}: {rows} rows        ");
        }
    }
}

/// Opens the database at `url` with the settings of `args`; `migrate` applies pending migrations (and may
/// create a SQLite file), otherwise a missing SQLite file is an error.
async fn open_at(args: &Args, url: &str, migrate: bool) -> Result<Db> {
    let mut settings = Settings::load(args.config.as_deref())?;
    settings.database.url = botdb::DatabaseUrl::new(url.to_owned());
    settings.database.run_migrations &= migrate;
    for_transfer(&mut settings);
    if !migrate
        && let Some(file) = settings.database.url.sqlite_file()
        && !std::path::Path::new(file).exists()
    {
        return Err(Error::Config(format!("no database at {file} (check the URL)")));
    }
    Db::open(settings).await
}

/// The URL of a SQLite file that must exist.
fn sqlite_url(file: &std::path::Path) -> Result<String> {
    if !file.is_file() {
        return Err(Error::InvalidRequest(format!("no backup file at {}", file.display())));
    }
    Ok(format!("sqlite://{}?mode=rw", file.display()))
}

/// The manifest written beside a backup.
fn manifest_path(file: &std::path::Path) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".manifest.json");
    name.into()
}

/// The tables whose rows or checksums differ between two summaries.
fn differing(a: &[botdb::TableSum], b: &[botdb::TableSum]) -> Vec<String> {
    let mut out: Vec<String> = a.iter().zip(b).filter(|(x, y)| x != y).map(|(x, _)| x.model.clone()).collect();
    if a.len() != b.len() {
        out.push("(the table lists differ)".into());
    }
    out
}

/// `copy --from --to`: both ends opened here (the global `--database-url` does not apply).
async fn copy(args: &Args, from: &str, to: &str, tables: &[String], dry_run: bool) -> Result<ExitCode> {
    if args.database_url.is_some() {
        return Err(Error::InvalidRequest("copy takes --from and --to; remove --database-url".into()));
    }
    if from == to {
        return Err(Error::InvalidRequest("--from and --to name the same database".into()));
    }
    let source = open_at(args, from, false).await?;
    let target = match open_at(args, to, !dry_run).await {
        Ok(t) => t,
        Err(e) => {
            source.shutdown().await;
            return Err(e);
        }
    };
    let result = copy_between(&source, &target, tables, dry_run).await;
    source.shutdown().await;
    target.shutdown().await;
    result
}

async fn copy_between(source: &Db, target: &Db, tables: &[String], dry_run: bool) -> Result<ExitCode> {
    let (from, to) = (source.settings().database.url.redacted(), target.settings().database.url.redacted());
    if dry_run {
        let rows = |stats: Vec<botdb::TableStats>| -> Value {
            stats
                .into_iter()
                .map(|t| (t.model.to_owned(), Value::from(t.rows)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let target_rows = target.stats().await.map(rows).unwrap_or(Value::Null);
        print(
            &json!({"from": from, "to": to, "source_rows": rows(source.stats().await?), "target_rows": target_rows}),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let moved = source.copy_into(target, tables, &progress()).await?;
    let (a, b) = (source.table_sums(tables).await?, target.table_sums(tables).await?);
    let differ = differing(&a, &b);
    print(&json!({"from": from, "to": to, "copied": moved, "verified": differ.is_empty(), "tables": b}))?;
    if !differ.is_empty() {
        eprintln!(
            "error: after the copy these tables differ (did the source change meanwhile?): {}",
            differ.join(", ")
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// `backup FILE`: `VACUUM INTO`, then the manifest of the copy's tables.
async fn backup(db: &Db, file: &std::path::Path) -> Result<()> {
    let manifest = manifest_path(file);
    if manifest.exists() {
        return Err(Error::InvalidRequest(format!("{} exists already; choose a new file", manifest.display())));
    }
    db.backup_to(file).await?;
    let mut settings = db.settings().clone();
    settings.database.url = botdb::DatabaseUrl::new(sqlite_url(file)?);
    settings.database.run_migrations = false;
    for_transfer(&mut settings);
    let copy = Db::open(settings).await?;
    let sums = copy.table_sums(&[]).await;
    copy.shutdown().await;
    let sums = sums?;
    let doc = json!({"source": db.settings().database.url.redacted(), "tables": sums});
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&manifest, text)
        .map_err(|e| Error::InvalidRequest(format!("cannot write {}: {e}", manifest.display())))?;
    let rows: u64 = sums.iter().map(|t| t.rows).sum();
    print(&json!({"backup": file, "manifest": manifest, "rows": rows, "tables": sums}))
}

/// `restore FILE`: the backup checked against its manifest, the plan, then clear, copy and verify.
async fn restore(db: &Db, file: &std::path::Path, yes: bool, dry_run: bool) -> Result<ExitCode> {
    let mut settings = db.settings().clone();
    settings.database.url = botdb::DatabaseUrl::new(sqlite_url(file)?);
    settings.database.run_migrations = false;
    for_transfer(&mut settings);
    let backup = Db::open(settings).await?;
    let result = restore_from(db, &backup, file, yes, dry_run).await;
    backup.shutdown().await;
    result
}

async fn restore_from(db: &Db, backup: &Db, file: &std::path::Path, yes: bool, dry_run: bool) -> Result<ExitCode> {
    let sums = backup.table_sums(&[]).await?;
    let manifest = manifest_path(file);
    if manifest.exists() {
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| Error::InvalidRequest(format!("cannot read {}: {e}", manifest.display())))?;
        let listed: Vec<botdb::TableSum> = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| serde_json::from_value(v["tables"].clone()).ok())
            .ok_or_else(|| Error::InvalidRequest(format!("{} is not a backup manifest", manifest.display())))?;
        let differ = differing(&listed, &sums);
        if !differ.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "{} does not match its manifest (tables {}): the file changed since the backup",
                file.display(),
                differ.join(", ")
            )));
        }
    }
    let target = db.settings().database.url.redacted();
    let current: Vec<Value> = match db.stats().await {
        Ok(stats) => {
            stats.into_iter().filter(|t| t.rows > 0).map(|t| json!({"table": t.table, "rows": t.rows})).collect()
        }
        Err(_) => Vec::new(),
    };
    let replaced: u64 = current.iter().filter_map(|t| t["rows"].as_u64()).sum();
    let restored: u64 = sums.iter().map(|t| t.rows).sum();
    if dry_run {
        print(&json!({"target": target, "from": file, "deletes": current, "restores": sums}))?;
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        return Err(Error::InvalidRequest(format!(
            "`restore` on {target} deletes {replaced} row(s) in {} table(s) and restores {restored} row(s) from {}; add --yes to confirm (--dry-run shows the plan)",
            current.len(),
            file.display()
        )));
    }
    let deleted = db.clear_tables(&[]).await?;
    let moved = backup.copy_into(db, &[], &progress()).await?;
    let after = db.table_sums(&[]).await?;
    let differ = differing(&sums, &after);
    print(
        &json!({"target": target, "from": file, "deleted": deleted, "restored": moved, "verified": differ.is_empty(), "tables": after}),
    )?;
    if !differ.is_empty() {
        eprintln!("error: after the restore these tables differ from the backup: {}", differ.join(", "));
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the command; `Ok` carries the exit code (2 for a failed check).
pub(crate) async fn run(args: Args) -> Result<ExitCode> {
    let _ = FORMAT.set(args.format);
    if let Command::Models = args.command {
        let models: Vec<Value> = botdb::models()
            .iter()
            .map(|m| {
                json!({"model": m.name, "table": m.table,
                    "columns": m.columns.iter().map(|c| c.name).collect::<Vec<_>>()})
            })
            .collect();
        print(&models)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Config { action: ConfigAction::Show } = &args.command {
        let settings = settings_of(&args)?;
        let mut v = serde_json::to_value(&settings).map_err(|e| Error::Internal(e.to_string()))?;
        v["database"]["url"] = json!(settings.database.url.redacted());
        if let Some(u) = &settings.cache.redis.url {
            v["cache"]["redis"]["url"] = json!(u.redacted());
        }
        print(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Copy { from, to, tables, dry_run } = &args.command {
        return copy(&args, from, to, tables, *dry_run).await;
    }
    // Only commands that write migrate first; the others see the schema as it is, and never create a
    // database (a mistyped SQLite path is an error, not a new empty file).
    let writes = match &args.command {
        Command::Query { query_type, .. } => !matches!(query_type.as_str(), "get" | "count"),
        Command::Save { .. } | Command::StoreAction { .. } | Command::Cache { action: CacheAction::Flush { .. } } => {
            true
        }
        Command::Migrate { .. } | Command::Analyze | Command::Vacuum | Command::Checkpoint => true,
        Command::Prune { yes, .. } | Command::Restore { yes, .. } => *yes,
        Command::Import { .. } => true,
        _ => false,
    };
    if !writes
        && let Some(file) = settings_of(&args)?.database.url.sqlite_file().map(str::to_owned)
        && !std::path::Path::new(&file).exists()
    {
        let e = Error::Config(format!("no database at {file}: this command never creates one (check --database-url)"));
        return match args.command {
            Command::Health => Ok(health_down(&e)),
            _ => Err(e),
        };
    }
    let migrate_first = writes && !matches!(args.command, Command::Migrate { .. });
    let mut db = match open(&args, migrate_first).await {
        Ok(db) => db,
        Err(e) if matches!(args.command, Command::Health) => return Ok(health_down(&e)),
        Err(e) => return Err(e),
    };
    if let Command::Cache { .. } | Command::Health = args.command {
        // Let the invalidation bus subscribe before asking Redis (bounded).
        db = wait_for_bus(db).await;
    }
    let code = execute(&db, args.command).await;
    db.shutdown().await;
    code
}

async fn execute(db: &Db, command: Command) -> Result<ExitCode> {
    let compat = Compat(db.clone());
    match command {
        Command::Models | Command::Copy { .. } | Command::Config { .. } => {
            unreachable!("handled before opening a database")
        }
        Command::Migrate { action } => {
            match action {
                MigrateAction::Up { steps } => db.migrate_up(steps).await?,
                MigrateAction::Down { steps, yes, dry_run } => {
                    let plan = revert_plan(db, Some(steps)).await?;
                    if !confirmed(&plan, "migrate down", yes, dry_run)? {
                        return Ok(ExitCode::SUCCESS);
                    }
                    db.migrate_down(Some(steps)).await?;
                }
                MigrateAction::Status => {}
                MigrateAction::Fresh { yes, dry_run } => {
                    let plan = revert_plan(db, None).await?;
                    if !confirmed(&plan, "migrate fresh", yes, dry_run)? {
                        return Ok(ExitCode::SUCCESS);
                    }
                    db.migrate_fresh().await?;
                }
            }
            print(&db.migrate_status().await?)?;
        }
        Command::Query { model, query_type, filter, data, order_by, limit, single, all } => {
            // Options that do not apply to the query type are refused, never silently ignored.
            let unused: Vec<&str> = [
                ("--limit", limit.is_some() && query_type != "get"),
                ("--single", single && query_type != "get"),
                ("--order-by", !order_by.is_empty() && query_type != "get"),
                ("--filter", filter.is_some() && query_type == "create"),
                ("--data", data.is_some() && !matches!(query_type.as_str(), "create" | "update")),
                ("--all", all && !matches!(query_type.as_str(), "update" | "delete")),
            ]
            .into_iter()
            .filter_map(|(name, given)| given.then_some(name))
            .collect();
            if !unused.is_empty() {
                return Err(botdb::Error::InvalidRequest(format!(
                    "{} does not apply to --type {}; remove it",
                    unused.join(", "),
                    query_type.chars().flat_map(char::escape_debug).take(40).collect::<String>()
                )));
            }
            if matches!(query_type.as_str(), "update" | "delete") && filter.is_none() && !all {
                return Err(botdb::Error::InvalidRequest(format!(
                    "--type {query_type} without --filter would touch every row of {}; give --filter, or --all to mean it",
                    model.chars().flat_map(char::escape_debug).take(40).collect::<String>()
                )));
            }
            let filter = filter.map(|f| parse_json("filter", &f)).transpose()?;
            let data = data.map(|d| parse_json("data", &d)).transpose()?;
            let out = compat
                .db_query(&model, &query_type, filter.as_ref(), data.as_ref(), limit, Some(&order_by), single)
                .await?;
            print(&out)?;
        }
        Command::Save { model, data, key_field, key_value } => {
            let data = parse_json("data", &data)?;
            let key_value = key_value.map(|k| parse_json("key-value", &k)).transpose()?;
            print(&compat.db_save(&model, &data, key_field.as_deref(), key_value.as_ref()).await?)?;
        }
        Command::StoreAction { chat_stream, name, data, display, done, build_into_prompt, thinking_id } => {
            let info = ActionInfo {
                chat_stream: chat_stream.map(|c| parse_json("chat-stream", &c)).transpose()?,
                action_build_into_prompt: build_into_prompt,
                action_prompt_display: display,
                action_done: done,
                thinking_id,
                action_data: data.map(|d| parse_json("data", &d)).transpose()?.unwrap_or_else(|| json!({})),
                action_name: name,
            };
            print(&compat.store_action_info(&info).await?)?;
        }
        Command::Check { schema } => {
            let report = db.check().await?;
            let differences = if schema { db.check_schema().await? } else { vec![] };
            let mut out = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
            if schema {
                out["schema_differences"] = json!(differences);
            }
            print(&out)?;
            if !report.ok() || !differences.is_empty() {
                eprintln!("error: check found a problem (see the report on stdout)");
                return Ok(ExitCode::from(2));
            }
        }
        Command::Aggregate { model, function, field, filter } => {
            let filter = filter.map(|f| parse_json("filter", &f)).transpose()?.unwrap_or(Value::Null);
            print(&db.aggregate(&model, &function, &field, &filter).await?)?;
        }
        Command::Distinct { model, field, filter } => {
            let filter = filter.map(|f| parse_json("filter", &f)).transpose()?.unwrap_or(Value::Null);
            print(&db.distinct(&model, &field, &filter).await?)?;
        }
        Command::Verify { ack_log } => return crate::verify::verify(db, &ack_log).await,
        Command::Stats => print(&db.stats().await?)?,
        Command::Prune { model, older_than, by, filter, batch, yes, dry_run } => {
            let age = parse_age(&older_than)?;
            let filter = filter.map(|f| parse_json("filter", &f)).transpose()?.unwrap_or(Value::Null);
            let count = db.prune(&model, by.as_deref(), age, &filter, batch, !yes).await?;
            if !yes && !dry_run {
                return Err(Error::InvalidRequest(format!(
                    "`prune` on {} would delete {count} row(s) of {}; add --yes to confirm (--dry-run counts them)",
                    db.settings().database.url.redacted(),
                    model.chars().flat_map(char::escape_debug).take(40).collect::<String>()
                )));
            }
            let key = if yes { "deleted" } else { "would_delete" };
            print(&json!({"model": model, "older_than_s": age.as_secs(), key: count}))?;
        }
        Command::Backup { file } => backup(db, &file).await?,
        Command::Restore { file, yes, dry_run } => return restore(db, &file, yes, dry_run).await,
        Command::Export { dir, tables } => {
            let moved = db.export_jsonl(&dir, &tables, &progress()).await?;
            print(&json!({"dir": dir, "exported": moved}))?;
        }
        Command::Import { dir, tables } => {
            let moved = db.import_jsonl(&dir, &tables, &progress()).await?;
            print(&json!({"dir": dir, "imported": moved}))?;
        }
        Command::Vacuum => {
            db.vacuum().await?;
            print(&json!({"vacuumed": botdb::models().len()}))?;
        }
        Command::Checkpoint => {
            let (log, copied) = db.checkpoint().await?;
            print(&json!({"log_frames": log, "copied_frames": copied}))?;
        }
        Command::Analyze => {
            db.analyze().await?;
            print(&serde_json::json!({"analyzed": botdb::models().len()}))?;
        }
        Command::Health => {
            let h = db.health().await;
            print(&h)?;
            // 0 ok, 3 degraded, 4 down (2 is clap's usage error).
            match h.status {
                botdb::HealthStatus::Down => {
                    eprintln!("error: the database is down");
                    return Ok(ExitCode::from(4));
                }
                botdb::HealthStatus::Degraded => return Ok(ExitCode::from(3)),
                botdb::HealthStatus::Ok => {}
            }
        }
        Command::Cache { action: CacheAction::Stats } => {
            let processes = db.published_cache_stats().await;
            print(&json!({ "redis": db.redis_state(), "processes": processes, "this_process": db.cache_stats() }))?;
        }
        Command::Cache { action: CacheAction::Flush { models, partition } } if !models.is_empty() => {
            db.forget_cached(&models, partition.as_deref()).await?;
            let redis = db.settings().cache.redis.url.is_some();
            if !redis {
                eprintln!("warning: no Redis tier configured: only this process's cache forgot them");
            }
            print(&json!({ "forgot": models, "partition": partition, "redis_configured": redis }))?;
        }
        Command::Cache { action: CacheAction::Flush { .. } } => {
            let reached = db.flush_cache().await;
            if reached.is_none() {
                eprintln!("warning: no Redis tier reachable: only this process's cache was flushed");
            }
            print(&json!({ "flushed": true, "running_processes_reached": reached }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
