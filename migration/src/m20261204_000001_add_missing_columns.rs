//! v3: adopts a database whose tables lack nullable columns of the contract. The newest bot creates
//! `user_relationships` without `user_aliases`; every such column is added, NULL in the rows already
//! there. A missing NOT NULL column is not guessed at: `botdb-admin check` reports it.
//!
//! `down` leaves the added columns in place: they are part of the contract, and dropping them would drop
//! whatever botdb wrote into them since.

use sea_orm_migration::prelude::*;

use crate::m20261123_000001_create_tables::column_type;
use crate::schema_v1::TABLES;

/// Adds the contract's nullable columns missing from existing tables.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        for table in TABLES {
            if !manager.has_table(table.name).await? {
                continue;
            }
            for &(name, sqlite, pg, nullable) in &table.columns[1..] {
                if !nullable || manager.has_column(table.name, name).await? {
                    continue;
                }
                let mut col = ColumnDef::new(Alias::new(name));
                col.custom(Alias::new(column_type(backend, sqlite, pg))).null();
                manager
                    .alter_table(Table::alter().table(Alias::new(table.name)).add_column(&mut col).to_owned())
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
