//! Tenants, API keys, MCP servers, agents, attachments, the audit trail and idempotency records.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Prefix,
    Digest,
    CreatedAt,
}

#[derive(DeriveIden)]
enum McpServers {
    Table,
    Id,
    TenantId,
    Name,
    Slug,
    Description,
    Config,
    Secrets,
    SecretHints,
    DiscoveryResult,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AgentMcpServers {
    Table,
    TenantId,
    AgentId,
    McpServerId,
    Tools,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    Actor,
    Action,
    TargetType,
    TargetId,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    KeyHash,
    RequestHash,
    Status,
    Response,
    CreatedAt,
}

fn id<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().primary_key().to_owned()
}

fn uuid<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().to_owned()
}

fn text<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

fn opt_text<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).text().null().to_owned()
}

fn time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().to_owned()
}

fn cascade(
    from: (impl IntoIden + 'static, impl IntoIden + 'static),
    to: (impl IntoIden + 'static, impl IntoIden + 'static),
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .col(id(Tenants::Id))
                .col(text(Tenants::Name))
                .col(ColumnDef::new(Tenants::Slug).text().not_null().unique_key())
                .col(time(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(id(ApiKeys::Id))
                .col(uuid(ApiKeys::TenantId))
                .col(opt_text(ApiKeys::Name))
                .col(text(ApiKeys::Prefix))
                .col(ColumnDef::new(ApiKeys::Digest).blob().not_null())
                .col(time(ApiKeys::CreatedAt))
                .foreign_key(&mut cascade((ApiKeys::Table, ApiKeys::TenantId), (Tenants::Table, Tenants::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("api_keys_prefix").table(ApiKeys::Table).col(ApiKeys::Prefix).to_owned())
            .await?;
        m.create_index(Index::create().name("api_keys_tenant").table(ApiKeys::Table).col(ApiKeys::TenantId).to_owned())
            .await?;

        m.create_table(
            Table::create()
                .table(McpServers::Table)
                .col(id(McpServers::Id))
                .col(uuid(McpServers::TenantId))
                .col(text(McpServers::Name))
                .col(text(McpServers::Slug))
                .col(opt_text(McpServers::Description))
                .col(text(McpServers::Config))
                .col(ColumnDef::new(McpServers::Secrets).blob().null())
                .col(text(McpServers::SecretHints))
                .col(opt_text(McpServers::DiscoveryResult))
                .col(time(McpServers::CreatedAt))
                .col(time(McpServers::UpdatedAt))
                .foreign_key(&mut cascade((McpServers::Table, McpServers::TenantId), (Tenants::Table, Tenants::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mcp_servers_tenant_slug")
                .table(McpServers::Table)
                .col(McpServers::TenantId)
                .col(McpServers::Slug)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mcp_servers_tenant_id")
                .table(McpServers::Table)
                .col(McpServers::TenantId)
                .col(McpServers::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Agents::Table)
                .col(id(Agents::Id))
                .col(uuid(Agents::TenantId))
                .col(text(Agents::Name))
                .col(opt_text(Agents::Description))
                .col(time(Agents::CreatedAt))
                .col(time(Agents::UpdatedAt))
                .foreign_key(&mut cascade((Agents::Table, Agents::TenantId), (Tenants::Table, Tenants::Id)))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("agents_tenant_id")
                .table(Agents::Table)
                .col(Agents::TenantId)
                .col(Agents::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AgentMcpServers::Table)
                .col(uuid(AgentMcpServers::TenantId))
                .col(uuid(AgentMcpServers::AgentId))
                .col(uuid(AgentMcpServers::McpServerId))
                .col(opt_text(AgentMcpServers::Tools))
                .col(time(AgentMcpServers::CreatedAt))
                .col(time(AgentMcpServers::UpdatedAt))
                .primary_key(Index::create().col(AgentMcpServers::AgentId).col(AgentMcpServers::McpServerId))
                .foreign_key(&mut cascade(
                    (AgentMcpServers::Table, AgentMcpServers::TenantId),
                    (Tenants::Table, Tenants::Id),
                ))
                .foreign_key(&mut cascade(
                    (AgentMcpServers::Table, AgentMcpServers::AgentId),
                    (Agents::Table, Agents::Id),
                ))
                .foreign_key(&mut cascade(
                    (AgentMcpServers::Table, AgentMcpServers::McpServerId),
                    (McpServers::Table, McpServers::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("agent_mcp_servers_server")
                .table(AgentMcpServers::Table)
                .col(AgentMcpServers::McpServerId)
                .to_owned(),
        )
        .await?;

        // Audit events outlive what they describe: no foreign keys. Admin events have no tenant.
        m.create_table(
            Table::create()
                .table(AuditEvents::Table)
                .col(id(AuditEvents::Id))
                .col(ColumnDef::new(AuditEvents::TenantId).uuid().null())
                .col(text(AuditEvents::Actor))
                .col(text(AuditEvents::Action))
                .col(text(AuditEvents::TargetType))
                .col(opt_text(AuditEvents::TargetId))
                .col(text(AuditEvents::Data))
                .col(time(AuditEvents::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_events_tenant_id")
                .table(AuditEvents::Table)
                .col(AuditEvents::TenantId)
                .col(AuditEvents::Id)
                .to_owned(),
        )
        .await?;

        // Keyed by SHA-256 of (scope, key): neither the caller's key nor the response is readable.
        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(ColumnDef::new(IdempotencyKeys::KeyHash).text().not_null().primary_key())
                .col(ColumnDef::new(IdempotencyKeys::RequestHash).blob().not_null())
                .col(ColumnDef::new(IdempotencyKeys::Status).integer().null())
                .col(ColumnDef::new(IdempotencyKeys::Response).blob().null())
                .col(time(IdempotencyKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            IdempotencyKeys::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            AgentMcpServers::Table.into_iden(),
            Agents::Table.into_iden(),
            McpServers::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
