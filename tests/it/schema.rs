//! The schema contract: the migrated schema matches `docs/schema.md`; a database created from the bot's own
//! DDL opens and works; `migrate down` then `up` leaves an equal schema.

use std::collections::{BTreeMap, BTreeSet};

use botdb::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use botdb::{Db, Settings};
use serde_json::json;

use crate::helpers::{Backend, TestDb, backend_tests, required_data};

backend_tests!(
    schema_check_names_what_a_table_lacks,
    migrate_down_then_up_leaves_an_equal_schema,
    analyze_gives_the_planner_statistics,
    vacuum_and_checkpoint,
    prune_deletes_old_rows_in_batches
);

/// (table → [(column, sqlite type, not null)], table → {index name → (columns, unique)}) from schema.md.
type Spec = (BTreeMap<String, Vec<(String, String, bool)>>, BTreeMap<String, BTreeMap<String, (Vec<String>, bool)>>);

fn parse_spec() -> Spec {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let (mut cols, mut idx) = (BTreeMap::new(), BTreeMap::new());
    let mut table = String::new();
    for line in text.lines() {
        if line.starts_with("## ") {
            // botdb's own sections after the contract's tables.
            table.clear();
        } else if let Some(rest) = line.strip_prefix("### `") {
            table = rest.split("table `").nth(1).unwrap().trim_end_matches('`').to_owned();
        } else if !table.is_empty() && line.starts_with("| ") && !line.starts_with("| column") {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let ty = if cells[5] == "PK" { "INTEGER".to_owned() } else { cells[1].to_owned() };
            cols.entry(table.clone()).or_insert_with(Vec::new).push((cells[0].to_owned(), ty, cells[3] == "NOT NULL"));
        } else if let Some(rest) = line.strip_prefix("Indexes (name(cols)): ") {
            let m: &mut BTreeMap<String, (Vec<String>, bool)> = idx.entry(table.clone()).or_default();
            for part in rest.split("; ") {
                let name = part.split('`').nth(1).unwrap().to_owned();
                let inner = part.split('(').nth(1).unwrap().split(')').next().unwrap();
                let cs = inner.split(',').map(|c| c.trim().to_owned()).collect();
                let unique = part.split(')').nth(1).is_some_and(|rest| rest.trim_start().starts_with("UNIQUE"));
                m.insert(name, (cs, unique));
            }
        }
    }
    (cols, idx)
}

async fn rows(conn: &impl ConnectionTrait, sql: &str) -> Vec<botdb::sea_orm::QueryResult> {
    conn.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap()
}

/// Compares a SQLite database's tables, columns and indexes with the contract.
async fn assert_matches_spec(conn: &impl ConnectionTrait, own_indexes: usize) {
    let (spec_cols, spec_idx) = parse_spec();
    assert_eq!(spec_cols.len(), 25);
    for (table, cols) in &spec_cols {
        let got: Vec<(String, String, bool)> = rows(conn, &format!("PRAGMA table_info({table})"))
            .await
            .iter()
            .map(|r| {
                let name: String = r.try_get_by_index(1).unwrap();
                let ty: String = r.try_get_by_index(2).unwrap();
                let pk: i32 = r.try_get_by_index(5).unwrap();
                let notnull: i32 = r.try_get_by_index(3).unwrap();
                (name, ty.to_uppercase(), notnull == 1 || pk == 1)
            })
            .collect();
        assert_eq!(&got, cols, "columns of {table}");
        let mut got_idx = BTreeMap::new();
        for r in rows(conn, &format!("PRAGMA index_list({table})")).await {
            let name: String = r.try_get_by_index(1).unwrap();
            let unique: i32 = r.try_get_by_index(2).unwrap();
            let icols: Vec<String> = rows(conn, &format!("PRAGMA index_info({name})"))
                .await
                .iter()
                .map(|c| c.try_get_by_index(2).unwrap())
                .collect();
            got_idx.insert(name, (icols, unique == 1));
        }
        for (name, want) in &spec_idx[table] {
            assert_eq!(got_idx.get(name), Some(want), "index {name} on {table}");
        }
    }
    // botdb's own hot-path indexes.
    let extra = rows(conn, "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_botdb_%'").await;
    assert_eq!(extra.len(), own_indexes);
    // images.path is a table-level UNIQUE constraint.
    let sql: String =
        rows(conn, "SELECT sql FROM sqlite_master WHERE name = 'images'").await[0].try_get_by_index(0).unwrap();
    assert!(sql.contains("UNIQUE (\"path\")") || sql.contains("UNIQUE (path)"), "{sql}");
}

#[tokio::test]
async fn migrated_sqlite_schema_matches_the_contract() {
    let t = crate::helpers::open(Backend::Sqlite).await.unwrap();
    assert_matches_spec(botdb::testing::engine(&t.db).reader(), 3).await;
    let report = t.db.check().await.unwrap();
    assert!(report.ok(), "{report:?}");
    t.close().await;
}

#[tokio::test]
async fn a_database_created_by_the_bot_opens_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bot.sqlite?mode=rwc", dir.path().display());
    // The bot creates its database and writes a row as it does (a DATETIME without a fraction).
    let raw = Database::connect(&url).await.unwrap();
    raw.execute_unprepared(include_str!("../fixtures/bot_schema.sql")).await.unwrap();
    raw.execute_unprepared(
        "INSERT INTO llm_usage (model_name, model_assign_name, model_api_provider, user_id, request_type, endpoint, \
         prompt_tokens, completion_tokens, time_cost, total_tokens, cost, status, timestamp) \
         VALUES ('m', 'a', 'p', 'u', 'chat', '/', 1, 2, NULL, 3, 0.5, 'ok', '2025-01-02 03:04:05')",
    )
    .await
    .unwrap();
    raw.close().await.unwrap();
    assert_matches_spec(&Database::connect(&url).await.unwrap(), 0).await;

    let db = Db::open(Settings::for_url(&url)).await.unwrap();
    assert!(db.check().await.unwrap().ok());
    let rows = db.find("LLMUsage", &json!({}), &[], None).await.unwrap();
    assert_eq!(rows[0]["timestamp"], json!("2025-01-02 03:04:05.000000"));
    assert_eq!(rows[0]["time_cost"], json!(null));
    for m in botdb::models() {
        db.create(m.name, &required_data(m, 7)).await.unwrap_or_else(|e| panic!("{}: {e}", m.name));
    }
    assert_eq!(db.count("LLMUsage", &json!({})).await.unwrap(), 2);
    db.shutdown().await;
    // botdb's migration added its own indexes and nothing else changed.
    assert_matches_spec(&Database::connect(&url).await.unwrap(), 3).await;
}

/// The newest bot's database has no `user_relationships.user_aliases`: botdb adds it (NULL in the rows
/// already there) and works.
#[tokio::test]
async fn a_database_without_user_aliases_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bot.sqlite?mode=rwc", dir.path().display());
    let raw = Database::connect(&url).await.unwrap();
    raw.execute_unprepared(include_str!("../fixtures/bot_schema.sql")).await.unwrap();
    raw.execute_unprepared("ALTER TABLE user_relationships DROP COLUMN user_aliases").await.unwrap();
    raw.execute_unprepared("INSERT INTO user_relationships (user_id, user_name, relationship_score, last_updated, created_at) VALUES ('u0', 'old', 0.5, 1.0, '2025-01-01 00:00:00')").await.unwrap();
    raw.close().await.unwrap();
    let db = Db::open(Settings::for_url(&url)).await.unwrap();
    assert!(db.check().await.unwrap().ok());
    let old = db.find_one("UserRelationships", &json!({"user_id": "u0"}), &[]).await.unwrap().unwrap();
    assert_eq!(old["user_aliases"], json!(null));
    db.create("UserRelationships", &json!({"user_id": "u1", "relationship_score": 0.5, "user_aliases": "[\"x\"]"}))
        .await
        .unwrap();
    let new = db.find_one("UserRelationships", &json!({"user_id": "u1"}), &[]).await.unwrap().unwrap();
    assert_eq!(new["user_aliases"], json!("[\"x\"]"));
    db.shutdown().await;
}

/// `check_schema` (`botdb-admin check --schema`): nothing on a migrated database; then a dropped index
/// and a dropped column are named.
async fn schema_check_names_what_a_table_lacks(t: &TestDb) {
    assert_eq!(t.db.check_schema().await.unwrap(), Vec::<String>::new());
    let w = botdb::testing::engine(&t.db).writer();
    let drop_index = match t.backend {
        Backend::Mysql => "DROP INDEX idx_llmusage_user_id ON llm_usage",
        _ => "DROP INDEX idx_llmusage_user_id",
    };
    w.execute_unprepared(drop_index).await.unwrap();
    w.execute_unprepared("ALTER TABLE llm_usage DROP COLUMN completion_tokens").await.unwrap();
    let mut found = t.db.check_schema().await.unwrap();
    found.sort();
    assert_eq!(
        found,
        vec!["llm_usage.completion_tokens: missing column", "llm_usage: missing index idx_llmusage_user_id"]
    );
}

async fn schema_dump(t: &TestDb) -> BTreeSet<String> {
    let conn = botdb::testing::engine(&t.db).reader();
    let (backend, sqls): (DbBackend, &[&str]) = match t.backend {
        Backend::Sqlite => (
            DbBackend::Sqlite,
            &[
                "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master WHERE tbl_name NOT LIKE 'seaql%'",
            ],
        ),
        Backend::Postgres => (
            DbBackend::Postgres,
            &[
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(character_maximum_length::text, '') FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'seaql%'",
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'seaql%'",
            ],
        ),
        Backend::Mysql => (
            DbBackend::MySql,
            &[
                "SELECT CONCAT(table_name, '.', column_name, ' ', column_type, ' ', is_nullable) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name NOT LIKE 'seaql%'",
                "SELECT CONCAT(table_name, ' ', index_name, ' ', column_name, ' ', non_unique) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name NOT LIKE 'seaql%'",
            ],
        ),
    };
    let mut out = BTreeSet::new();
    for sql in sqls {
        for r in conn.query_all_raw(Statement::from_string(backend, *sql)).await.unwrap() {
            out.insert(r.try_get_by_index::<String>(0).unwrap());
        }
    }
    out
}

async fn migrate_down_then_up_leaves_an_equal_schema(t: &TestDb) {
    let before = schema_dump(t).await;
    assert!(before.len() > 100, "the dump sees the schema ({} lines)", before.len());
    // Floats are double precision on every backend.
    match t.backend {
        Backend::Postgres => assert!(before.iter().any(|l| l.starts_with("messages.time double precision NO"))),
        Backend::Mysql => assert!(before.iter().any(|l| l.starts_with("messages.time double NO"))),
        Backend::Sqlite => {}
    }
    // The newest migrations (missing columns: nothing to undo; botdb's cache fence) first, then the bot's tables.
    t.db.migrate_down(Some(2)).await.unwrap();
    let report = t.db.check().await.unwrap();
    assert_eq!((report.missing_tables.len(), report.pending_migrations.len()), (0, 2));
    assert!(schema_dump(t).await.iter().all(|l| !l.contains("botdb_cache_fence")));
    t.db.migrate_down(Some(1)).await.unwrap();
    let report = t.db.check().await.unwrap();
    assert_eq!(report.missing_tables.len(), 25, "down drops every table");
    assert_eq!(report.pending_migrations.len(), 3);
    let left = schema_dump(t).await;
    assert!(left.is_empty(), "{left:?}");
    t.db.migrate_up(None).await.unwrap();
    assert_eq!(schema_dump(t).await, before);
    let status = t.db.migrate_status().await.unwrap();
    assert!(status.iter().all(|m| m.applied));
    assert!(t.db.check().await.unwrap().ok());
}

/// `Db::analyze` leaves planner statistics for botdb's tables (a bulk-loaded server table has none).
async fn analyze_gives_the_planner_statistics(t: &TestDb) {
    let m = botdb::model("Messages").unwrap();
    let rows: Vec<serde_json::Value> = (0..50).map(|i| required_data(m, i)).collect();
    t.db.insert_many("Messages", &rows).await.unwrap();
    let conn = t.db.reader();
    let backend = conn.get_database_backend();
    let (sql, min) = match t.backend {
        Backend::Sqlite => ("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'messages'", 1),
        Backend::Postgres => ("SELECT COUNT(*) FROM pg_stats WHERE tablename = 'messages'", 1),
        // InnoDB keeps row estimates of its own; ANALYZE TABLE makes them exact for a table this small.
        Backend::Mysql => (
            "SELECT CAST(n_rows AS SIGNED) FROM mysql.innodb_table_stats WHERE database_name = DATABASE() AND table_name = 'messages'",
            50,
        ),
    };
    let count = |conn| async move {
        let row = botdb::sea_orm::ConnectionTrait::query_one_raw(conn, Statement::from_string(backend, sql)).await;
        // SQLite has no `sqlite_stat1` table before the first ANALYZE.
        row.ok().flatten().map_or(0, |r| r.try_get_by_index::<i64>(0).unwrap())
    };
    if t.backend != Backend::Mysql {
        assert_eq!(count(conn).await, 0, "no statistics before ANALYZE");
    }
    t.db.analyze().await.unwrap();
    assert!(count(conn).await >= min, "statistics after ANALYZE");
}

/// `migrate_fresh` drops botdb's tables and only those: a table of the bot's own beside them survives.
#[tokio::test]
async fn fresh_leaves_other_tables_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fresh.sqlite?mode=rwc", dir.path().display());
    let db = Db::open(Settings::for_url(url.clone())).await.unwrap();
    let conn = Database::connect(&url).await.unwrap();
    conn.execute_unprepared("CREATE TABLE not_botdb (x INTEGER)").await.unwrap();
    conn.execute_unprepared("INSERT INTO not_botdb VALUES (7)").await.unwrap();
    db.create("PersonInfo", &json!({"person_id": "p", "platform": "qq", "user_id": "u"})).await.unwrap();
    db.migrate_fresh().await.unwrap();
    assert_eq!(db.count("PersonInfo", &json!({})).await.unwrap(), 0, "botdb's tables start again");
    let rows = rows(&conn, "SELECT x FROM not_botdb").await;
    assert_eq!(rows.len(), 1, "the other table and its row are still there");
    db.shutdown().await;
    conn.close().await.unwrap();
}

/// `vacuum` gives back the space of deleted rows (SQLite: the file shrinks) and `checkpoint` empties SQLite's
/// write-ahead log; on a server `checkpoint` is refused with a typed error.
async fn vacuum_and_checkpoint(t: &TestDb) {
    let m = botdb::model("Messages").unwrap();
    let rows: Vec<serde_json::Value> = (0..2000).map(|i| required_data(m, i)).collect();
    t.db.insert_many("Messages", &rows).await.unwrap();
    t.db.delete("Messages", &json!({})).await.unwrap();
    if t.backend != Backend::Sqlite {
        t.db.vacuum().await.unwrap();
        assert!(matches!(t.db.checkpoint().await, Err(botdb::Error::InvalidRequest(_))));
        return;
    }
    let file = t.db.settings().database.url.sqlite_file().unwrap().to_owned();
    let wal = format!("{file}-wal");
    t.db.checkpoint().await.unwrap();
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0, "the log is truncated");
    let before = std::fs::metadata(&file).unwrap().len();
    t.db.vacuum().await.unwrap();
    t.db.checkpoint().await.unwrap();
    let after = std::fs::metadata(&file).unwrap().len();
    assert!(after < before, "the file shrinks: {before} -> {after} bytes");
}

/// `prune` deletes exactly the rows older than the age (by the model's time column) that match the filter, in
/// batches, and a dry run only counts them; the cache forgets them.
async fn prune_deletes_old_rows_in_batches(t: &TestDb) {
    let m = botdb::model("Messages").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let day = 86_400.0;
    for (i, (chat, age_days)) in
        [("a", 100.0), ("a", 40.0), ("a", 1.0), ("b", 100.0), ("b", 50.0), ("a", 31.0), ("a", 29.0)]
            .into_iter()
            .enumerate()
    {
        let mut row = required_data(m, i as i64);
        row["chat_id"] = json!(chat);
        row["time"] = json!(now - age_days * day);
        t.db.create("Messages", &row).await.unwrap();
    }
    let old = |c: &str| json!({"chat_id": c, "time": {"$lt": now - 30.0 * day}});
    assert_eq!(t.db.find("Messages", &old("a"), &[], None).await.unwrap().len(), 3, "cached before the prune");
    let month = std::time::Duration::from_secs(30 * 86_400);
    let a = json!({"chat_id": "a"});
    assert_eq!(t.db.prune("Messages", None, month, &a, 2, true).await.unwrap(), 3, "dry run");
    assert_eq!(t.db.count("Messages", &json!({})).await.unwrap(), 7, "nothing deleted by a dry run");
    assert_eq!(t.db.prune("Messages", None, month, &a, 2, false).await.unwrap(), 3);
    assert!(t.db.find("Messages", &old("a"), &[], None).await.unwrap().is_empty(), "the cache forgot them");
    assert_eq!(t.db.count("Messages", &json!({"chat_id": "a"})).await.unwrap(), 2);
    assert_eq!(t.db.count("Messages", &json!({"chat_id": "b"})).await.unwrap(), 2, "chat b untouched");
    let e = t.db.prune("LLMUsage", None, month, &serde_json::Value::Null, 10, true).await.unwrap_err();
    assert!(matches!(e, botdb::Error::InvalidRequest(_)), "no time column of its own: {e}");
    let e = t.db.prune("Messages", Some("chat_id"), month, &serde_json::Value::Null, 10, true).await.unwrap_err();
    assert!(e.to_string().contains("holds no time"), "{e}");
}
