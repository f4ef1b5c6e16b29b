//! Proactive refresh: each connection carries when it is next due (`next_refresh_at`, indexed, so
//! a worker's claim costs what is due, not what exists), a database lease (`lease_owner`,
//! `lease_until`) and a `version` that fences writes (compare-and-swap); plus the event outbox,
//! written in the same transaction as the state change it reports.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    Version,
    NextRefreshAt,
    LeaseOwner,
    LeaseUntil,
    RefreshFailures,
}

#[derive(DeriveIden)]
enum ConnectionEvents {
    Table,
    Id,
    TenantId,
    ConnectionId,
    EventType,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds columns one at a time.
        let columns = [
            ColumnDef::new(Connections::Version).big_integer().not_null().default(0).to_owned(),
            ColumnDef::new(Connections::NextRefreshAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Connections::LeaseOwner).text().null().to_owned(),
            ColumnDef::new(Connections::LeaseUntil).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Connections::RefreshFailures).integer().not_null().default(0).to_owned(),
        ];
        for mut column in columns {
            m.alter_table(Table::alter().table(Connections::Table).add_column(&mut column).to_owned()).await?;
        }
        m.create_index(
            Index::create()
                .name("connections_next_refresh")
                .table(Connections::Table)
                .col(Connections::NextRefreshAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ConnectionEvents::Table)
                .col(ColumnDef::new(ConnectionEvents::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(ConnectionEvents::TenantId).uuid().not_null())
                .col(ColumnDef::new(ConnectionEvents::ConnectionId).uuid().not_null())
                .col(ColumnDef::new(ConnectionEvents::EventType).text().not_null())
                .col(ColumnDef::new(ConnectionEvents::Data).text().not_null())
                .col(ColumnDef::new(ConnectionEvents::CreatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(ConnectionEvents::Table, ConnectionEvents::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("connection_events_tenant_connection")
                .table(ConnectionEvents::Table)
                .col(ConnectionEvents::TenantId)
                .col(ConnectionEvents::ConnectionId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConnectionEvents::Table).to_owned()).await?;
        m.drop_index(Index::drop().name("connections_next_refresh").table(Connections::Table).to_owned()).await?;
        for column in [
            Connections::RefreshFailures,
            Connections::LeaseUntil,
            Connections::LeaseOwner,
            Connections::NextRefreshAt,
            Connections::Version,
        ] {
            m.alter_table(Table::alter().table(Connections::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
