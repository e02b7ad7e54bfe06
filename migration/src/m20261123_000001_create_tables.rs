//! v1: the chat bot's 25 tables with every index the bot expects by name, plus botdb's own hot-path indexes.
//!
//! Column types follow `docs/schema.md` per backend: SQLite gets the bot's own type names (`FLOAT`,
//! `DATETIME`, `BOOLEAN`, …) so that `PRAGMA table_info` matches a database the bot created; PostgreSQL gets
//! the PostgreSQL column; MySQL/MariaDB gets `DOUBLE` for floats (never single precision), `DATETIME(6)` for
//! timestamps and a binary collation so that text compares byte-wise as on SQLite.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::schema_v1::{TABLES, TableV1};

/// Creates (or adopts) the 25 tables and their indexes.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The column type to write for `backend`, from the SQLite and PostgreSQL types of `schema.md`.
pub(crate) fn column_type(backend: DbBackend, sqlite: &str, pg: &str) -> String {
    match backend {
        DbBackend::Sqlite => sqlite.to_owned(),
        DbBackend::Postgres => match pg {
            // PostgreSQL's FLOAT without a precision is double precision; say so explicitly.
            "FLOAT" => "DOUBLE PRECISION".to_owned(),
            other => other.to_owned(),
        },
        _ => match pg {
            "FLOAT" => "DOUBLE".to_owned(),
            "BOOLEAN" => "BOOL".to_owned(),
            "TIMESTAMP WITHOUT TIME ZONE" => "DATETIME(6)".to_owned(),
            "INTEGER" => "INT".to_owned(),
            other => other.to_owned(),
        },
    }
}

fn create_table(backend: DbBackend, table: &TableV1) -> TableCreateStatement {
    let mut stmt = Table::create();
    stmt.table(Alias::new(table.name)).if_not_exists();
    for (i, &(name, sqlite, pg, nullable)) in table.columns.iter().enumerate() {
        let mut col = ColumnDef::new(Alias::new(name));
        if i == 0 {
            // `id`: a rowid alias on SQLite, SERIAL on PostgreSQL, AUTO_INCREMENT on MySQL.
            col.integer().not_null().primary_key();
            if backend != DbBackend::Sqlite {
                col.auto_increment();
            }
        } else {
            col.custom(Alias::new(column_type(backend, sqlite, pg)));
            if nullable {
                col.null();
            } else {
                col.not_null();
            }
        }
        stmt.col(&mut col);
    }
    for &unique in table.unique {
        stmt.index(Index::create().unique().col(Alias::new(unique)));
    }
    if backend == DbBackend::MySql {
        stmt.engine("InnoDB").character_set("utf8mb4").collate("utf8mb4_bin");
    }
    stmt.to_owned()
}

fn create_indexes(table: &TableV1) -> impl Iterator<Item = IndexCreateStatement> + '_ {
    table.indexes.iter().map(|&(name, cols, unique)| {
        let mut idx = Index::create();
        idx.name(name).table(Alias::new(table.name)).if_not_exists();
        for &c in cols {
            idx.col(Alias::new(c));
        }
        if unique {
            idx.unique();
        }
        idx.to_owned()
    })
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        for table in TABLES {
            manager.create_table(create_table(backend, table)).await?;
            for idx in create_indexes(table) {
                if backend == DbBackend::MySql && index_exists(manager, table.name, &idx).await? {
                    // MySQL has no `CREATE INDEX IF NOT EXISTS`; MariaDB does, but check for both.
                    continue;
                }
                manager.create_index(idx).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager.drop_table(Table::drop().table(Alias::new(table.name)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}

async fn index_exists(manager: &SchemaManager<'_>, table: &str, idx: &IndexCreateStatement) -> Result<bool, DbErr> {
    let name = idx.get_index_spec().get_name().unwrap_or_default().to_owned();
    manager.has_index(table, &name).await
}
