//! Background rediscovery: each server carries when its discovery is next due (`rediscover_at`,
//! indexed, so the worker's sweep costs what is due).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum McpServers {
    Table,
    RediscoverAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(McpServers::Table)
                .add_column(ColumnDef::new(McpServers::RediscoverAt).timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mcp_servers_rediscover_at")
                .table(McpServers::Table)
                .col(McpServers::RediscoverAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("mcp_servers_rediscover_at").table(McpServers::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(McpServers::Table).drop_column(McpServers::RediscoverAt).to_owned()).await
    }
}
