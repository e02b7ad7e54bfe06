//! Versioned, reversible migrations of the botdb schema (the chat bot's 25 tables, and botdb's own
//! `botdb_cache_fence`).
//!
//! Migration files are named `mYYYYMMDD_HHMMSS_name.rs`, each with an `up` and a `down`. The first one builds
//! the schema of `docs/schema.md` exactly (table, column and index names, types per backend); it uses
//! `IF NOT EXISTS` throughout so that a database already created by the bot itself is adopted as it is.

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_tables;
mod m20261202_000001_create_cache_fence;
mod m20261204_000001_add_missing_columns;
mod schema_v1;

/// The ordered list of botdb's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_tables::Migration),
            Box::new(m20261202_000001_create_cache_fence::Migration),
            Box::new(m20261204_000001_add_missing_columns::Migration),
        ]
    }
}

/// What a database lacks of the contract's schema (`docs/schema.md`): the columns and the index names of
/// the tables it has, one line each (a missing table is reported by botdb's `check` already). Empty when
/// nothing is missing. Extra columns and indexes (a newer bot's) are not differences.
///
/// # Errors
/// The database's errors while inspecting.
pub async fn schema_differences(manager: &SchemaManager<'_>) -> Result<Vec<String>, DbErr> {
    let mut out = Vec::new();
    for table in schema_v1::TABLES {
        if !manager.has_table(table.name).await? {
            continue;
        }
        for &(column, ..) in table.columns {
            if !manager.has_column(table.name, column).await? {
                out.push(format!("{}.{column}: missing column", table.name));
            }
        }
        for &(index, ..) in table.indexes {
            if !manager.has_index(table.name, index).await? {
                out.push(format!("{}: missing index {index}", table.name));
            }
        }
    }
    Ok(out)
}
