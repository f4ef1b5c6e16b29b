//! Health from real traffic (`GET /v1/mcp-servers/{id}/health`): counters per minute, per
//! server, source and outcome — written whole by the process that counted them, under its own
//! `instance_id`, so no two processes write the same row. Telemetry, not a record: rows older than
//! a day and a bit are pruned, and nothing else refers to them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HealthMinutes {
    Table,
    InstanceId,
    TenantId,
    McpServerId,
    Minute,
    Source,
    Outcome,
    Calls,
    LatencyMsSum,
    Histogram,
    LastAt,
    LastDetail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(HealthMinutes::Table)
                .col(ColumnDef::new(HealthMinutes::InstanceId).uuid().not_null())
                .col(ColumnDef::new(HealthMinutes::TenantId).uuid().not_null())
                .col(ColumnDef::new(HealthMinutes::McpServerId).uuid().not_null())
                .col(ColumnDef::new(HealthMinutes::Minute).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(HealthMinutes::Source).text().not_null())
                .col(ColumnDef::new(HealthMinutes::Outcome).text().not_null())
                .col(ColumnDef::new(HealthMinutes::Calls).big_integer().not_null())
                .col(ColumnDef::new(HealthMinutes::LatencyMsSum).big_integer().not_null())
                .col(ColumnDef::new(HealthMinutes::Histogram).text().not_null())
                .col(ColumnDef::new(HealthMinutes::LastAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(HealthMinutes::LastDetail).text())
                .primary_key(
                    Index::create()
                        .col(HealthMinutes::InstanceId)
                        .col(HealthMinutes::TenantId)
                        .col(HealthMinutes::McpServerId)
                        .col(HealthMinutes::Minute)
                        .col(HealthMinutes::Source)
                        .col(HealthMinutes::Outcome),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("health_minutes_by_server")
                .table(HealthMinutes::Table)
                .col(HealthMinutes::TenantId)
                .col(HealthMinutes::McpServerId)
                .col(HealthMinutes::Minute)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("health_minutes_by_minute")
                .table(HealthMinutes::Table)
                .col(HealthMinutes::Minute)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(HealthMinutes::Table).to_owned()).await
    }
}
