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
