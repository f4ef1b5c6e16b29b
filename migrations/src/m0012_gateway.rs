//! The gateway's public contract: agents get a `slug` (unique per tenant), because the gateway
//! route `/mcp/{tenant}/{agent}/{server}` names agents the way it names servers; attachments get
//! `prompts` and `resources` allow-lists beside `tools`.
//!
//! Existing agents get a slug derived from their name, numbered in creation order when two
//! names give the same one (`support-bot`, `support-bot-2`). The derivation is frozen here, not
//! borrowed from the domain crate, so this migration does the same thing whatever the code
//! later does.

use std::collections::{HashMap, HashSet};

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, FromQueryResult};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    TenantId,
    Name,
    Slug,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AgentMcpServers {
    Table,
    Prompts,
    Resources,
}

#[derive(FromQueryResult)]
struct Row {
    id: sea_orm_migration::sea_orm::prelude::Uuid,
    tenant_id: sea_orm_migration::sea_orm::prelude::Uuid,
    name: String,
}

const MAX_LEN: usize = 63;

fn derive(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
        if out.len() >= MAX_LEN {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() { "agent".to_owned() } else { out.to_owned() }
}

fn numbered(base: &str, n: u32) -> String {
    if n <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-{n}");
    let kept: String = base.chars().take(MAX_LEN.saturating_sub(suffix.len())).collect();
    format!("{}{suffix}", kept.trim_end_matches('-'))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Agents::Table)
                .add_column(ColumnDef::new(Agents::Slug).text().not_null().default(""))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        let select = Query::select()
            .columns([Agents::Id, Agents::TenantId, Agents::Name])
            .from(Agents::Table)
            .order_by(Agents::CreatedAt, Order::Asc)
            .order_by(Agents::Id, Order::Asc)
            .to_owned();
        let rows = Row::find_by_statement(db.get_database_backend().build(&select)).all(db).await?;
        let mut taken: HashMap<_, HashSet<String>> = HashMap::new();
        for row in rows {
            let used = taken.entry(row.tenant_id).or_default();
            let base = derive(&row.name);
            let slug = (1..).map(|n| numbered(&base, n)).find(|s| !used.contains(s)).unwrap_or(base);
            used.insert(slug.clone());
            m.exec_stmt(
                Query::update()
                    .table(Agents::Table)
                    .value(Agents::Slug, slug)
                    .and_where(Expr::col(Agents::Id).eq(row.id))
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("agents_tenant_slug")
                .table(Agents::Table)
                .col(Agents::TenantId)
                .col(Agents::Slug)
                .unique()
                .to_owned(),
        )
        .await?;
        for column in [AgentMcpServers::Prompts, AgentMcpServers::Resources] {
            m.alter_table(
                Table::alter()
                    .table(AgentMcpServers::Table)
                    .add_column(ColumnDef::new(column).text().null())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [AgentMcpServers::Prompts, AgentMcpServers::Resources] {
            m.alter_table(Table::alter().table(AgentMcpServers::Table).drop_column(column).to_owned()).await?;
        }
        m.drop_index(Index::drop().name("agents_tenant_slug").table(Agents::Table).to_owned()).await?;
        m.alter_table(Table::alter().table(Agents::Table).drop_column(Agents::Slug).to_owned()).await
    }
}
