//! Issuance records: every token obtained, refused or revoked for a grant (never a token value).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Issuances {
    Table,
    Id,
    TenantId,
    UserId,
    AgentId,
    McpServerId,
    Outcome,
    Reason,
    Scopes,
    ExpiresAt,
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
        m.create_table(
            Table::create()
                .table(Issuances::Table)
                .col(ColumnDef::new(Issuances::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Issuances::TenantId).uuid().not_null())
                .col(ColumnDef::new(Issuances::UserId).text().not_null())
                .col(ColumnDef::new(Issuances::AgentId).uuid().not_null())
                .col(ColumnDef::new(Issuances::McpServerId).uuid().not_null())
                .col(ColumnDef::new(Issuances::Outcome).text().not_null())
                .col(ColumnDef::new(Issuances::Reason).text().null())
                .col(ColumnDef::new(Issuances::Scopes).text().not_null())
                .col(ColumnDef::new(Issuances::ExpiresAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(Issuances::CreatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Issuances::Table, Issuances::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("issuances_tenant_server")
                .table(Issuances::Table)
                .col(Issuances::TenantId)
                .col(Issuances::McpServerId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Issuances::Table).to_owned()).await
    }
}
