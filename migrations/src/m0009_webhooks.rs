//! A tenant's webhook: where connection events are delivered, and the sealed secret that signs
//! them (Standard Webhooks). One per tenant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantWebhooks {
    Table,
    TenantId,
    Url,
    Secret,
    CreatedAt,
    UpdatedAt,
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
                .table(TenantWebhooks::Table)
                .col(ColumnDef::new(TenantWebhooks::TenantId).uuid().not_null().primary_key())
                .col(ColumnDef::new(TenantWebhooks::Url).text().not_null())
                .col(ColumnDef::new(TenantWebhooks::Secret).blob().not_null())
                .col(ColumnDef::new(TenantWebhooks::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(TenantWebhooks::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(TenantWebhooks::Table, TenantWebhooks::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TenantWebhooks::Table).to_owned()).await
    }
}
