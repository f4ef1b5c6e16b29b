//! Connections (one consent grant per tenant, user, agent and server) and the authorization-code
//! flows that create them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    Id,
    TenantId,
    UserId,
    AgentId,
    McpServerId,
    Status,
    Issuer,
    TokenEndpoint,
    Resource,
    Scopes,
    TokenSet,
    ExpiresAt,
    ConnectedAt,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuthFlows {
    Table,
    Id,
    TenantId,
    UserId,
    AgentId,
    McpServerId,
    StateHash,
    Verifier,
    Issuer,
    TokenEndpoint,
    Resource,
    RedirectUri,
    Scopes,
    ReturnUrl,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum McpServers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
}

fn cascade<T: IntoIden + 'static>(
    from: T,
    col: T,
    to: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from, col).to(to, to_col).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Connections::Table)
                .col(ColumnDef::new(Connections::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Connections::TenantId).uuid().not_null())
                .col(ColumnDef::new(Connections::UserId).text().not_null())
                .col(ColumnDef::new(Connections::AgentId).uuid().not_null())
                .col(ColumnDef::new(Connections::McpServerId).uuid().not_null())
                .col(ColumnDef::new(Connections::Status).text().not_null())
                .col(ColumnDef::new(Connections::Issuer).text().null())
                .col(ColumnDef::new(Connections::TokenEndpoint).text().null())
                .col(ColumnDef::new(Connections::Resource).text().null())
                .col(ColumnDef::new(Connections::Scopes).text().not_null())
                .col(ColumnDef::new(Connections::TokenSet).blob().null())
                .col(ColumnDef::new(Connections::ExpiresAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(Connections::ConnectedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(Connections::LastError).text().null())
                .col(ColumnDef::new(Connections::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Connections::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(&mut cascade(Connections::Table, Connections::TenantId, Tenants::Table, Tenants::Id))
                .foreign_key(&mut cascade(Connections::Table, Connections::AgentId, Agents::Table, Agents::Id))
                .foreign_key(&mut cascade(
                    Connections::Table,
                    Connections::McpServerId,
                    McpServers::Table,
                    McpServers::Id,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("connections_grant")
                .table(Connections::Table)
                .col(Connections::TenantId)
                .col(Connections::UserId)
                .col(Connections::AgentId)
                .col(Connections::McpServerId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuthFlows::Table)
                .col(ColumnDef::new(AuthFlows::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(AuthFlows::TenantId).uuid().not_null())
                .col(ColumnDef::new(AuthFlows::UserId).text().not_null())
                .col(ColumnDef::new(AuthFlows::AgentId).uuid().not_null())
                .col(ColumnDef::new(AuthFlows::McpServerId).uuid().not_null())
                .col(ColumnDef::new(AuthFlows::StateHash).text().not_null().unique_key())
                .col(ColumnDef::new(AuthFlows::Verifier).blob().not_null())
                .col(ColumnDef::new(AuthFlows::Issuer).text().not_null())
                .col(ColumnDef::new(AuthFlows::TokenEndpoint).text().not_null())
                .col(ColumnDef::new(AuthFlows::Resource).text().not_null())
                .col(ColumnDef::new(AuthFlows::RedirectUri).text().not_null())
                .col(ColumnDef::new(AuthFlows::Scopes).text().not_null())
                .col(ColumnDef::new(AuthFlows::ReturnUrl).text().null())
                .col(ColumnDef::new(AuthFlows::ExpiresAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(AuthFlows::UsedAt).timestamp_with_time_zone().null())
                .col(ColumnDef::new(AuthFlows::CreatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(&mut cascade(AuthFlows::Table, AuthFlows::TenantId, Tenants::Table, Tenants::Id))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuthFlows::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(Connections::Table).to_owned()).await
    }
}
