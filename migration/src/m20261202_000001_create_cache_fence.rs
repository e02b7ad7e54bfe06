//! botdb's own table `botdb_cache_fence`: one row counting writes acknowledged while the shared cache
//! counters in Redis could not be moved (`owed`) and how many of them were made good (`paid`, with the
//! counter values that did it in `floors`). While `owed > paid`, no process serves cached reads; see
//! `src/optimization/cache/fence.rs` in botdb.

use sea_orm_migration::prelude::*;

/// Creates the fence table and its one row.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The table and its columns.
#[derive(DeriveIden)]
enum BotdbCacheFence {
    Table,
    Id,
    Owed,
    Paid,
    Floors,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BotdbCacheFence::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(BotdbCacheFence::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(BotdbCacheFence::Owed).big_integer().not_null().default(0))
                    .col(ColumnDef::new(BotdbCacheFence::Paid).big_integer().not_null().default(0))
                    .col(ColumnDef::new(BotdbCacheFence::Floors).text().not_null())
                    .to_owned(),
            )
            .await?;
        let row = Query::insert()
            .into_table(BotdbCacheFence::Table)
            .columns([BotdbCacheFence::Id, BotdbCacheFence::Owed, BotdbCacheFence::Paid, BotdbCacheFence::Floors])
            .values_panic([1.into(), 0.into(), 0.into(), "".into()])
            .to_owned();
        manager.exec_stmt(row).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(BotdbCacheFence::Table).if_exists().to_owned()).await
    }
}
