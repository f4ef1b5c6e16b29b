//! The gateway as an OAuth authorization server (issue 15): a tenant's identity provider (the
//! OpenID Connect provider its users sign in with), the MCP clients registered with the tenant's
//! authorization server (Dynamic Client Registration; Client ID Metadata Documents are fetched, not
//! stored), and what it issued — one `gateway_grants` row per authorization code exchanged (the
//! token family), one `gateway_refresh_tokens` row per refresh token, kept after use so that a
//! rotated token presented again is recognised and kills its family. Tokens are stored as SHA-256
//! digests only; the identity provider's client secret is sealed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdentityProviders {
    Table,
    TenantId,
    Issuer,
    ClientId,
    ClientSecret,
    Scopes,
    UserClaim,
    Rules,
    Metadata,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum GatewayClients {
    Table,
    TenantId,
    ClientId,
    ClientName,
    RedirectUris,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GatewayGrants {
    Table,
    Id,
    TenantId,
    CodeHash,
    ClientId,
    UserId,
    AgentId,
    Resource,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum GatewayRefreshTokens {
    Table,
    TokenHash,
    TenantId,
    GrantId,
    AccessRevocationId,
    UsedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

fn tenant_fk(table: impl IntoIden + 'static, column: impl IntoIden + 'static) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(IdentityProviders::Table)
                .col(ColumnDef::new(IdentityProviders::TenantId).uuid().not_null().primary_key())
                .col(ColumnDef::new(IdentityProviders::Issuer).text().not_null())
                .col(ColumnDef::new(IdentityProviders::ClientId).text().not_null())
                .col(ColumnDef::new(IdentityProviders::ClientSecret).blob().null())
                .col(ColumnDef::new(IdentityProviders::Scopes).text().not_null())
                .col(ColumnDef::new(IdentityProviders::UserClaim).text().not_null())
                .col(ColumnDef::new(IdentityProviders::Rules).text().not_null())
                .col(ColumnDef::new(IdentityProviders::Metadata).text().not_null())
                .col(ColumnDef::new(IdentityProviders::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(&mut tenant_fk(IdentityProviders::Table, IdentityProviders::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GatewayClients::Table)
                .col(ColumnDef::new(GatewayClients::TenantId).uuid().not_null())
                .col(ColumnDef::new(GatewayClients::ClientId).text().not_null())
                .col(ColumnDef::new(GatewayClients::ClientName).text().not_null())
                .col(ColumnDef::new(GatewayClients::RedirectUris).text().not_null())
                .col(ColumnDef::new(GatewayClients::CreatedAt).timestamp_with_time_zone().not_null())
                .primary_key(Index::create().col(GatewayClients::TenantId).col(GatewayClients::ClientId))
                .foreign_key(&mut tenant_fk(GatewayClients::Table, GatewayClients::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GatewayGrants::Table)
                .col(ColumnDef::new(GatewayGrants::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(GatewayGrants::TenantId).uuid().not_null())
                .col(ColumnDef::new(GatewayGrants::CodeHash).text().not_null().unique_key())
                .col(ColumnDef::new(GatewayGrants::ClientId).text().not_null())
                .col(ColumnDef::new(GatewayGrants::UserId).text().not_null())
                .col(ColumnDef::new(GatewayGrants::AgentId).uuid().not_null())
                .col(ColumnDef::new(GatewayGrants::Resource).text().not_null())
                .col(ColumnDef::new(GatewayGrants::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(GatewayGrants::RevokedAt).timestamp_with_time_zone())
                .foreign_key(&mut tenant_fk(GatewayGrants::Table, GatewayGrants::TenantId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("gateway_grants_by_user")
                .table(GatewayGrants::Table)
                .col(GatewayGrants::TenantId)
                .col(GatewayGrants::UserId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GatewayRefreshTokens::Table)
                .col(ColumnDef::new(GatewayRefreshTokens::TokenHash).text().not_null().primary_key())
                .col(ColumnDef::new(GatewayRefreshTokens::TenantId).uuid().not_null())
                .col(ColumnDef::new(GatewayRefreshTokens::GrantId).uuid().not_null())
                .col(ColumnDef::new(GatewayRefreshTokens::AccessRevocationId).text().not_null())
                .col(ColumnDef::new(GatewayRefreshTokens::UsedAt).timestamp_with_time_zone())
                .col(ColumnDef::new(GatewayRefreshTokens::ExpiresAt).timestamp_with_time_zone().not_null())
                .foreign_key(&mut tenant_fk(GatewayRefreshTokens::Table, GatewayRefreshTokens::TenantId))
                .foreign_key(
                    ForeignKey::create()
                        .from(GatewayRefreshTokens::Table, GatewayRefreshTokens::GrantId)
                        .to(GatewayGrants::Table, GatewayGrants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("gateway_refresh_tokens_by_grant")
                .table(GatewayRefreshTokens::Table)
                .col(GatewayRefreshTokens::GrantId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(GatewayRefreshTokens::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(GatewayGrants::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(GatewayClients::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(IdentityProviders::Table).to_owned()).await
    }
}
