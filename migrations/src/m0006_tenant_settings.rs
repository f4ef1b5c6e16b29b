//! Per-tenant settings: the exact return URLs the consent page may send a browser back to.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantSettings {
    Table,
    TenantId,
    ReturnUrls,
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
                .table(TenantSettings::Table)
                .col(ColumnDef::new(TenantSettings::TenantId).uuid().not_null().primary_key())
                .col(ColumnDef::new(TenantSettings::ReturnUrls).text().not_null())
                .col(ColumnDef::new(TenantSettings::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(TenantSettings::Table, TenantSettings::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TenantSettings::Table).to_owned()).await
    }
}
