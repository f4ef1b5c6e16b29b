//! Session tickets: each tenant's signing key (private half sealed) and revoked ticket ids.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantSigningKeys {
    Table,
    TenantId,
    PrivateKey,
    PublicKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RevokedTickets {
    Table,
    TenantId,
    RevocationId,
    RevokedAt,
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
                .table(TenantSigningKeys::Table)
                .col(ColumnDef::new(TenantSigningKeys::TenantId).uuid().not_null().primary_key())
                .col(ColumnDef::new(TenantSigningKeys::PrivateKey).blob().not_null())
                .col(ColumnDef::new(TenantSigningKeys::PublicKey).text().not_null())
                .col(ColumnDef::new(TenantSigningKeys::CreatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(TenantSigningKeys::Table, TenantSigningKeys::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RevokedTickets::Table)
                .col(ColumnDef::new(RevokedTickets::TenantId).uuid().not_null())
                .col(ColumnDef::new(RevokedTickets::RevocationId).text().not_null())
                .col(ColumnDef::new(RevokedTickets::RevokedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(RevokedTickets::TenantId).col(RevokedTickets::RevocationId))
                .foreign_key(
                    ForeignKey::create()
                        .from(RevokedTickets::Table, RevokedTickets::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RevokedTickets::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(TenantSigningKeys::Table).to_owned()).await
    }
}
