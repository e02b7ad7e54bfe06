//! Migrations: applying, reverting and reporting the versioned schema of the `migration` crate.

use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use crate::utils::error::{Error, Result};

/// One migration and whether it is applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MigrationState {
    /// The migration's name.
    pub name: String,
    /// Applied (true) or pending (false).
    pub applied: bool,
}

fn err(e: sea_orm::DbErr) -> Error {
    Error::Migration(e.to_string())
}

/// Applies `steps` pending migrations (all when `None`).
///
/// # Errors
/// [`Error::Migration`].
pub(crate) async fn up(conn: &DatabaseConnection, steps: Option<u32>) -> Result<()> {
    Migrator::up(conn, steps).await.map_err(err)
}

/// Reverts `steps` applied migrations (all when `None`).
///
/// # Errors
/// [`Error::Migration`].
pub(crate) async fn down(conn: &DatabaseConnection, steps: Option<u32>) -> Result<()> {
    Migrator::down(conn, steps).await.map_err(err)
}

/// Reverts every applied migration (dropping botdb's tables and nothing else in the database), then applies
/// every migration. (sea-orm's own `fresh` drops every table of the database, botdb's or not.)
///
/// # Errors
/// [`Error::Migration`].
pub(crate) async fn fresh(conn: &DatabaseConnection) -> Result<()> {
    Migrator::down(conn, None).await.map_err(err)?;
    Migrator::up(conn, None).await.map_err(err)
}

/// Every migration with its state.
///
/// # Errors
/// [`Error::Migration`].
pub(crate) async fn status(conn: &DatabaseConnection) -> Result<Vec<MigrationState>> {
    let all = Migrator::get_migration_with_status(conn).await.map_err(err)?;
    Ok(all
        .iter()
        .map(|m| MigrationState {
            name: m.name().to_owned(),
            applied: m.status() == migration::MigrationStatus::Applied,
        })
        .collect())
}
