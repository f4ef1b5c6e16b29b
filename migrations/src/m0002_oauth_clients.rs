//! OAuth clients registered with authorization servers: one per (tenant, issuer, client type).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthClients {
    Table,
    Id,
    TenantId,
    Issuer,
    ClientType,
    Registration,
    ClientId,
    ClientSecret,
    RegistrationAccessToken,
    RegistrationClientUri,
    TokenEndpointAuthMethod,
    RedirectUri,
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
                .table(OauthClients::Table)
                .col(ColumnDef::new(OauthClients::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(OauthClients::TenantId).uuid().not_null())
                .col(ColumnDef::new(OauthClients::Issuer).text().not_null())
                .col(ColumnDef::new(OauthClients::ClientType).text().not_null())
                .col(ColumnDef::new(OauthClients::Registration).text().not_null())
                .col(ColumnDef::new(OauthClients::ClientId).text().not_null())
                .col(ColumnDef::new(OauthClients::ClientSecret).blob().null())
                .col(ColumnDef::new(OauthClients::RegistrationAccessToken).blob().null())
                .col(ColumnDef::new(OauthClients::RegistrationClientUri).text().null())
                .col(ColumnDef::new(OauthClients::TokenEndpointAuthMethod).text().not_null())
                .col(ColumnDef::new(OauthClients::RedirectUri).text().not_null())
                .col(ColumnDef::new(OauthClients::CreatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(OauthClients::Table, OauthClients::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("oauth_clients_tenant_issuer_type")
                .table(OauthClients::Table)
                .col(OauthClients::TenantId)
                .col(OauthClients::Issuer)
                .col(OauthClients::ClientType)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(OauthClients::Table).to_owned()).await
    }
}
