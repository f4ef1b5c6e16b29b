//! Agents and their attachments to MCP servers.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::entities::{agent_mcp_servers, agents, connections, mcp_servers};
use super::{TenantStore, is_unique_violation, json_err, map_err};
use crate::agent::{Agent, AgentSpec, Attachment, Filter};
use crate::connection::ConnectionStatus;
use crate::page::{Page, PageRequest};
use crate::tenant::Actor;
use crate::{AgentId, DomainError, McpServerId, slug};

fn agent(m: agents::Model) -> Agent {
    Agent {
        id: m.id.into(),
        tenant_id: m.tenant_id.into(),
        name: m.name,
        slug: m.slug,
        description: m.description,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// What an attachment shows of its server: id, name, slug and config (JSON) — not the large
/// `discovery_result`, nor the `secrets` ciphertext.
type ServerSummary = (uuid::Uuid, String, String, String);

fn attachment(
    link: agent_mcp_servers::Model,
    agent_slug: &str,
    server: &ServerSummary,
) -> Result<Attachment, DomainError> {
    let list = |column: Option<&str>, what| column.map(serde_json::from_str).transpose().map_err(json_err(what));
    Ok(Attachment {
        agent_id: link.agent_id.into(),
        agent_slug: agent_slug.to_owned(),
        mcp_server_id: link.mcp_server_id.into(),
        server_name: server.1.clone(),
        server_slug: server.2.clone(),
        config: serde_json::from_str(&server.3).map_err(json_err("server config"))?,
        tools: list(link.tools.as_deref(), "attachment tools")?,
        prompts: list(link.prompts.as_deref(), "attachment prompts")?,
        resources: list(link.resources.as_deref(), "attachment resources")?,
        created_at: link.created_at,
        updated_at: link.updated_at,
    })
}

impl TenantStore<'_> {
    /// Creates an agent. Without an explicit slug one is derived from the name and numbered
    /// (`support-bot-2`) when taken; an explicit slug that is taken is a conflict.
    pub async fn create_agent(&self, actor: &Actor, spec: AgentSpec) -> Result<Agent, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let slug = match spec.slug {
            Some(explicit) => explicit,
            None => {
                let base = slug::derive(&spec.name).unwrap_or_else(|| "agent".to_owned());
                self.free_agent_slug(&txn, &base).await?
            }
        };
        let now = crate::clock::now();
        let model = agents::ActiveModel {
            id: Set(AgentId::new().0),
            tenant_id: Set(self.tenant_id.0),
            name: Set(spec.name),
            slug: Set(slug.clone()),
            description: Set(spec.description),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| slug_conflict(e, &slug))?;
        let a = agent(model);
        audit::record(&txn, self.agent_entry(actor, "agent.created", &a)).await?;
        txn.commit().await.map_err(map_err)?;
        Ok(a)
    }

    pub async fn list_agents(&self, page: PageRequest) -> Result<Page<Agent>, DomainError> {
        let mut q = self.find::<agents::Entity>().order_by_asc(agents::Column::Id).limit(page.limit + 1);
        if let Some(after) = page.after {
            q = q.filter(agents::Column::Id.gt(after));
        }
        let rows = q.all(&self.store.db).await.map_err(map_err)?;
        Ok(Page::from_overfetch(rows.into_iter().map(agent).collect(), page.limit, |a| a.id.0))
    }

    async fn find_agent(&self, db: &impl ConnectionTrait, id: AgentId) -> Result<agents::Model, DomainError> {
        self.find_by_id::<agents::Entity, _>(id.0)
            .one(db)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::not_found("agent", id))
    }

    /// An agent by its slug or its id (the `{agent}` segment of gateway URLs).
    pub async fn agent_by_ref(&self, agent_ref: &str) -> Result<Agent, DomainError> {
        let mut q = self.find::<agents::Entity>();
        q = match uuid::Uuid::try_parse(agent_ref) {
            Ok(id) => q.filter(agents::Column::Id.eq(id)),
            Err(_) => q.filter(agents::Column::Slug.eq(agent_ref)),
        };
        q.one(&self.store.db)
            .await
            .map_err(map_err)?
            .map(agent)
            .ok_or_else(|| DomainError::not_found("agent", agent_ref))
    }

    pub async fn get_agent(&self, id: AgentId) -> Result<Agent, DomainError> {
        self.find_agent(&self.store.db, id).await.map(agent)
    }

    pub async fn update_agent(&self, actor: &Actor, id: AgentId, spec: AgentSpec) -> Result<Agent, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let current = self.find_agent(&txn, id).await?;
        let slug = spec.slug.unwrap_or_else(|| current.slug.clone());
        if slug != current.slug {
            self.refuse_slug_change(&txn, "agent", &current.slug, Some(id), None).await?;
        }
        let mut active: agents::ActiveModel = current.into();
        active.name = Set(spec.name);
        active.slug = Set(slug.clone());
        active.description = Set(spec.description);
        active.updated_at = Set(crate::clock::now());
        let a = agent(active.update(&txn).await.map_err(|e| slug_conflict(e, &slug))?);
        audit::record(&txn, self.agent_entry(actor, "agent.updated", &a)).await?;
        txn.commit().await.map_err(map_err)?;
        Ok(a)
    }

    /// Deletes the agent; its attachments go with it.
    pub async fn delete_agent(&self, actor: &Actor, id: AgentId) -> Result<(), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let a = agent(self.find_agent(&txn, id).await?);
        // Its grants end with it, and their tokens are revoked at the provider.
        self.revoke_all(&txn, None, Some(id), None, actor).await?;
        self.delete::<agents::Entity>().filter(agents::Column::Id.eq(id.0)).exec(&txn).await.map_err(map_err)?;
        audit::record(&txn, self.agent_entry(actor, "agent.deleted", &a)).await?;
        txn.commit().await.map_err(map_err)
    }

    /// The servers attached to an agent, in server-id order.
    pub async fn list_attachments(
        &self,
        agent_id: AgentId,
        page: PageRequest,
    ) -> Result<Page<Attachment>, DomainError> {
        let agent = self.find_agent(&self.store.db, agent_id).await?;
        let mut q = self
            .find::<agent_mcp_servers::Entity>()
            .filter(agent_mcp_servers::Column::AgentId.eq(agent_id.0))
            .order_by_asc(agent_mcp_servers::Column::McpServerId)
            .limit(page.limit + 1);
        if let Some(after) = page.after {
            q = q.filter(agent_mcp_servers::Column::McpServerId.gt(after));
        }
        let links = q.all(&self.store.db).await.map_err(map_err)?;
        let ids: Vec<_> = links.iter().map(|l| l.mcp_server_id).collect();
        let servers = self.server_summaries(ids).await?;
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            if let Some(server) = servers.iter().find(|s| s.0 == link.mcp_server_id) {
                out.push(attachment(link, &agent.slug, server)?);
            }
        }
        Ok(Page::from_overfetch(out, page.limit, |a| a.mcp_server_id.0))
    }

    async fn server_summaries(&self, ids: Vec<uuid::Uuid>) -> Result<Vec<ServerSummary>, DomainError> {
        use mcp_servers::Column as C;
        self.find::<mcp_servers::Entity>()
            .select_only()
            .columns([C::Id, C::Name, C::Slug, C::Config])
            .filter(C::Id.is_in(ids))
            .into_tuple()
            .all(&self.store.db)
            .await
            .map_err(map_err)
    }

    /// What a gateway route names: the agent and the server by slug (or id), and their
    /// attachment. Anything missing — or another tenant's — is not found.
    pub async fn resolve_route(
        &self,
        agent_ref: &str,
        server_ref: &str,
    ) -> Result<(Agent, crate::mcp_server::McpServer, Attachment), DomainError> {
        let by_id = |r: &str| uuid::Uuid::try_parse(r).ok();
        let mut q = self.find::<agents::Entity>();
        q = match by_id(agent_ref) {
            Some(id) => q.filter(agents::Column::Id.eq(id)),
            None => q.filter(agents::Column::Slug.eq(agent_ref)),
        };
        let row =
            q.one(&self.store.db).await.map_err(map_err)?.ok_or_else(|| DomainError::not_found("agent", agent_ref))?;
        let server_id = match by_id(server_ref) {
            Some(id) => McpServerId(id),
            None => {
                let id: Option<uuid::Uuid> = self
                    .find::<mcp_servers::Entity>()
                    .select_only()
                    .column(mcp_servers::Column::Id)
                    .filter(mcp_servers::Column::Slug.eq(server_ref))
                    .into_tuple()
                    .one(&self.store.db)
                    .await
                    .map_err(map_err)?;
                McpServerId(id.ok_or_else(|| DomainError::not_found("mcp server", server_ref))?)
            }
        };
        let attachment = self.get_attachment(row.id.into(), server_id).await?;
        let server = self.get_mcp_server(server_id).await?;
        Ok((agent(row), server, attachment))
    }

    /// One attachment; not attached (or another tenant's) is not found.
    pub async fn get_attachment(&self, agent_id: AgentId, server_id: McpServerId) -> Result<Attachment, DomainError> {
        let agent = self.find_agent(&self.store.db, agent_id).await?;
        let link = self
            .find_by_id::<agent_mcp_servers::Entity, _>((agent_id.0, server_id.0))
            .one(&self.store.db)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::NotFound { kind: "attachment", id: format!("{agent_id}/{server_id}") })?;
        let server = self
            .server_summaries(vec![server_id.0])
            .await?
            .pop()
            .ok_or_else(|| DomainError::NotFound { kind: "mcp server", id: server_id.to_string() })?;
        attachment(link, &agent.slug, &server)
    }

    /// Attaches a server to an agent, or replaces the allow-lists of an existing attachment.
    /// Returns the attachment and whether it is new.
    pub async fn attach(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        server_id: McpServerId,
        filter: Filter,
    ) -> Result<(Attachment, bool), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let agent = self.find_agent(&txn, agent_id).await?;
        let server = self.find_server(&txn, server_id).await?;
        let encode = |list: &Option<Vec<String>>| {
            list.as_ref().map(serde_json::to_string).transpose().map_err(json_err("attachment allow-list"))
        };
        let (tools_json, prompts_json, resources_json) =
            (encode(&filter.tools)?, encode(&filter.prompts)?, encode(&filter.resources)?);
        let existing = self
            .find_by_id::<agent_mcp_servers::Entity, _>((agent_id.0, server_id.0))
            .one(&txn)
            .await
            .map_err(map_err)?;
        let now = crate::clock::now();
        let (link, created) = match existing {
            Some(link) => {
                let mut active: agent_mcp_servers::ActiveModel = link.into();
                active.tools = Set(tools_json);
                active.prompts = Set(prompts_json);
                active.resources = Set(resources_json);
                active.updated_at = Set(now);
                (active.update(&txn).await.map_err(map_err)?, false)
            }
            None => {
                let link = agent_mcp_servers::ActiveModel {
                    tenant_id: Set(self.tenant_id.0),
                    agent_id: Set(agent_id.0),
                    mcp_server_id: Set(server_id.0),
                    tools: Set(tools_json),
                    prompts: Set(prompts_json),
                    resources: Set(resources_json),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await
                .map_err(map_err)?;
                (link, true)
            }
        };
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(self.tenant_id),
                actor,
                action: if created { "agent.mcp_server_attached" } else { "agent.mcp_server_tools_updated" },
                target_type: "agent",
                target_id: Some(agent_id.to_string()),
                data: json!({
                    "mcp_server_id": server_id,
                    "tools": filter.tools,
                    "prompts": filter.prompts,
                    "resources": filter.resources,
                }),
            },
        )
        .await?;
        let a = attachment(link, &agent.slug, &(server.id, server.name, server.slug, server.config))?;
        txn.commit().await.map_err(map_err)?;
        Ok((a, created))
    }

    pub async fn detach(&self, actor: &Actor, agent_id: AgentId, server_id: McpServerId) -> Result<(), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        self.find_agent(&txn, agent_id).await?;
        let deleted = self
            .delete::<agent_mcp_servers::Entity>()
            .filter(agent_mcp_servers::Column::AgentId.eq(agent_id.0))
            .filter(agent_mcp_servers::Column::McpServerId.eq(server_id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if deleted.rows_affected == 0 {
            return Err(DomainError::NotFound { kind: "attachment", id: format!("{agent_id}/{server_id}") });
        }
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(self.tenant_id),
                actor,
                action: "agent.mcp_server_detached",
                target_type: "agent",
                target_id: Some(agent_id.to_string()),
                data: json!({"mcp_server_id": server_id}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)
    }

    async fn free_agent_slug(&self, db: &impl ConnectionTrait, base: &str) -> Result<String, DomainError> {
        let taken: Vec<String> = self
            .find::<agents::Entity>()
            .select_only()
            .column(agents::Column::Slug)
            .filter(agents::Column::Slug.starts_with(base))
            .into_tuple()
            .all(db)
            .await
            .map_err(map_err)?;
        (1..=1000).map(|n| slug::numbered(base, n)).find(|c| !taken.contains(c)).ok_or_else(|| DomainError::Conflict {
            code: crate::ErrorCode::SlugTaken,
            message: format!("no free slug near `{base}`; pass one"),
        })
    }

    /// A slug is part of the gateway's routes (`/mcp/{tenant}/{agent}/{server}`), which users'
    /// MCP clients are configured with: while an agent's or a server's connections are live, its
    /// slug stays. The refusal names a few of them.
    pub(super) async fn refuse_slug_change(
        &self,
        db: &impl ConnectionTrait,
        kind: &str,
        slug: &str,
        agent: Option<AgentId>,
        server: Option<McpServerId>,
    ) -> Result<(), DomainError> {
        use connections::Column as C;
        let mut q = self.find::<connections::Entity>().filter(C::Status.ne(ConnectionStatus::Revoked.as_str()));
        if let Some(a) = agent {
            q = q.filter(C::AgentId.eq(a.0));
        }
        if let Some(s) = server {
            q = q.filter(C::McpServerId.eq(s.0));
        }
        let live: Vec<(uuid::Uuid, String)> = q
            .select_only()
            .columns([C::Id, C::UserId])
            .order_by_asc(C::Id)
            .limit(4)
            .into_tuple()
            .all(db)
            .await
            .map_err(map_err)?;
        if live.is_empty() {
            return Ok(());
        }
        let named: Vec<String> =
            live.iter().take(3).map(|(id, user)| format!("connection {id} (user `{user}`)")).collect();
        let more = if live.len() > 3 { ", and more" } else { "" };
        Err(DomainError::Conflict {
            code: crate::ErrorCode::SlugInUse,
            message: format!(
                "the {kind}'s slug `{slug}` is in gateway routes that users are connected through: {}{more}",
                named.join(", ")
            ),
        })
    }

    fn agent_entry<'a>(&self, actor: &'a Actor, action: &'static str, a: &Agent) -> AuditEntry<'a> {
        AuditEntry {
            tenant: Some(self.tenant_id),
            actor,
            action,
            target_type: "agent",
            target_id: Some(a.id.to_string()),
            data: json!({"name": a.name, "slug": a.slug}),
        }
    }
}

fn slug_conflict(e: sea_orm::DbErr, slug: &str) -> DomainError {
    if is_unique_violation(&e) {
        DomainError::Conflict {
            code: crate::ErrorCode::SlugTaken,
            message: format!("an agent with slug `{slug}` already exists"),
        }
    } else {
        map_err(e)
    }
}
