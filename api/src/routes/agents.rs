//! `/v1/agents`: agents and their attachments to MCP servers (tenant API key).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::agent::{self, Agent, Attachment};
use switchboard_domain::{AgentId, McpServerId};
use utoipa_actix_web::service_config::ServiceConfig;

use super::idempotency::{self, Created};
use super::{ListQuery, optional_json, parse_id};
use crate::auth::TenantContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_agent)
        .service(list_agents)
        .service(get_agent)
        .service(update_agent)
        .service(delete_agent)
        .service(list_agent_mcp_servers)
        .service(attach_mcp_server)
        .service(detach_mcp_server)
        .service(super::client_setup::get_client_setup);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentResponse {
    pub id: uuid::Uuid,
    pub name: String,
    /// Unique in the tenant; the `{agent}` segment of gateway routes.
    pub slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Agent> for AgentResponse {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id.0,
            name: a.name,
            slug: a.slug,
            description: a.description,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    pub data: Vec<AgentResponse>,
    pub next_cursor: Option<String>,
}

/// An MCP server attached to an agent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttachmentResponse {
    pub agent_id: uuid::Uuid,
    pub mcp_server_id: uuid::Uuid,
    /// The server's name.
    pub name: String,
    /// The server's slug.
    pub slug: String,
    pub agent_slug: String,
    pub endpoint: String,
    /// The MCP gateway's route for this agent and server: `{public_url}/mcp/{tenant}/{agent}/{server}`.
    pub gateway_url: String,
    /// The tools the agent may use; null means every tool the server offers.
    pub tools: Option<Vec<String>>,
    /// The prompts the agent may use (by name); null means all of them.
    pub prompts: Option<Vec<String>>,
    /// The resources the agent may read (by URI); null means all of them.
    pub resources: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AttachmentResponse {
    fn new(a: Attachment, public_url: &str, tenant_slug: &str) -> Self {
        Self {
            gateway_url: a.gateway_url(public_url, tenant_slug),
            agent_id: a.agent_id.0,
            mcp_server_id: a.mcp_server_id.0,
            name: a.server_name,
            slug: a.server_slug,
            agent_slug: a.agent_slug,
            endpoint: a.config.endpoint,
            tools: a.tools,
            prompts: a.prompts,
            resources: a.resources,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttachmentList {
    pub data: Vec<AttachmentResponse>,
    pub next_cursor: Option<String>,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct AgentRequest {
    /// Display name, e.g. "support-bot".
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$")]
    name: String,
    /// The `{agent}` segment of gateway routes; derived from the name when omitted.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    slug: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = "^[^\\x00]*$")]
    description: Option<String>,
}

/// A JSON merge patch (RFC 7396) of an agent: `description: null` clears it.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct AgentPatchRequest {
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$", nullable = false)]
    name: Option<String>,
    /// Refused (409 `slug_in_use`) while the agent has live connections: it is in their routes.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", nullable = false)]
    slug: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = "^[^\\x00]*$")]
    description: Option<String>,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct AttachRequest {
    /// Allow-list of tool names; omit (or send no body) to allow every tool, `[]` to allow none.
    #[schema(max_items = 500, value_type = Option<Vec<ToolName>>)]
    tools: Option<Vec<String>>,
    /// Allow-list of prompt names, the same way.
    #[schema(max_items = 500, value_type = Option<Vec<ToolName>>)]
    prompts: Option<Vec<String>>,
    /// Allow-list of resource URIs (exact), the same way.
    #[schema(max_items = 500, value_type = Option<Vec<ResourceUri>>)]
    resources: Option<Vec<String>>,
}

/// A resource URI: 1–2048 characters, no control character, no surrounding whitespace.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[schema(pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]([^\\x00-\\x1f\\x7f-\\x9f]{0,2046}[^\\s\\x00-\\x1f\\x7f-\\x9f])?$")]
#[expect(dead_code, reason = "documents a string format")]
pub struct ResourceUri(String);

/// A tool name: 1–128 characters, no control character, no surrounding whitespace.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[schema(pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]([^\\x00-\\x1f\\x7f-\\x9f]{0,126}[^\\s\\x00-\\x1f\\x7f-\\x9f])?$")]
#[expect(dead_code, reason = "documents a string format")]
pub struct ToolName(String);

/// Create an agent.
#[utoipa::path(
    tag = "agents",
    request_body = AgentRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses((status = 201, body = AgentResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[post("")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn create_agent(
    state: web::Data<AppState>,
    tenant: TenantContext,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let scope = format!("tenant:{}:create_agent", tenant.tenant_id);
    idempotency::run(&state, &req, tenant.tenant_id, &scope, &body, || async {
        let spec = agent::validate_create(&body)?;
        let agent = tenant.store(&state.store).create_agent(&tenant.actor(), spec).await?;
        let location = format!("/v1/agents/{}", agent.id);
        Ok(Created {
            status: StatusCode::CREATED,
            body: serde_json::to_value(AgentResponse::from(agent)).unwrap_or_default(),
            location: Some(location),
        })
    })
    .await
}

/// List agents, oldest first.
#[utoipa::path(tag = "agents", params(ListQuery), responses((status = 200, body = AgentList)), security(("api_key" = [])))]
#[get("")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn list_agents(
    state: web::Data<AppState>,
    tenant: TenantContext,
    query: web::Query<ListQuery>,
) -> Result<web::Json<AgentList>, ApiError> {
    let page = tenant.store(&state.store).list_agents(query.page()?).await?;
    Ok(web::Json(AgentList { data: page.data.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

/// Get an agent.
#[utoipa::path(tag = "agents", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = AgentResponse)), security(("api_key" = [])))]
#[get("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_agent(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<AgentResponse>, ApiError> {
    let id: AgentId = parse_id("agent", &id)?;
    Ok(web::Json(tenant.store(&state.store).get_agent(id).await?.into()))
}

/// Update an agent (JSON merge patch).
#[utoipa::path(tag = "agents", params(("id" = uuid::Uuid, Path)), request_body = AgentPatchRequest, responses((status = 200, body = AgentResponse)), security(("api_key" = [])))]
#[patch("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn update_agent(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<AgentResponse>, ApiError> {
    let id: AgentId = parse_id("agent", &id)?;
    let store = tenant.store(&state.store);
    let spec = agent::validate_patch(&store.get_agent(id).await?, &body)?;
    let agent = store.update_agent(&tenant.actor(), id, spec).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    Ok(web::Json(agent.into()))
}

/// Delete an agent and its attachments.
#[utoipa::path(tag = "agents", params(("id" = uuid::Uuid, Path)), responses((status = 204)), security(("api_key" = [])))]
#[delete("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn delete_agent(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AgentId = parse_id("agent", &id)?;
    tenant.store(&state.store).delete_agent(&tenant.actor(), id).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    state.changed(switchboard_worker::changes::Change::Grants { tenant: tenant.tenant_id });
    state.runtime.wakeups.wake();
    Ok(HttpResponse::NoContent().finish())
}

/// List the MCP servers attached to an agent.
#[utoipa::path(tag = "agents", params(("id" = uuid::Uuid, Path), ListQuery), responses((status = 200, body = AttachmentList)), security(("api_key" = [])))]
#[get("/{id}/mcp-servers")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn list_agent_mcp_servers(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<AttachmentList>, ApiError> {
    let id: AgentId = parse_id("agent", &id)?;
    let store = tenant.store(&state.store);
    let page = store.list_attachments(id, query.page()?).await?;
    let tenant_slug = store.own_tenant().await?.slug;
    let public_url = &state.runtime.config().public_url;
    Ok(web::Json(AttachmentList {
        data: page.data.into_iter().map(|a| AttachmentResponse::new(a, public_url, &tenant_slug)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Attach an MCP server to an agent, or replace its allow-lists.
#[utoipa::path(
    tag = "agents",
    params(("id" = uuid::Uuid, Path), ("server_id" = uuid::Uuid, Path)),
    request_body(content = Option<AttachRequest>, description = "Optional: allow-lists of tools, prompts and resources"),
    responses((status = 201, body = AttachmentResponse, description = "attached"), (status = 200, body = AttachmentResponse, description = "already attached; allow-lists replaced")),
    security(("api_key" = []))
)]
#[put("/{id}/mcp-servers/{server_id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn attach_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let agent_id: AgentId = parse_id("agent", &path.0)?;
    let server_id: McpServerId = parse_id("mcp server", &path.1)?;
    let filter = agent::validate_attach(optional_json(&body)?.as_ref())?;
    let store = tenant.store(&state.store);
    let (attachment, created) = store.attach(&tenant.actor(), agent_id, server_id, filter).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    let tenant_slug = store.own_tenant().await?.slug;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status).json(AttachmentResponse::new(
        attachment,
        &state.runtime.config().public_url,
        &tenant_slug,
    )))
}

/// Detach an MCP server from an agent.
#[utoipa::path(tag = "agents", params(("id" = uuid::Uuid, Path), ("server_id" = uuid::Uuid, Path)), responses((status = 204)), security(("api_key" = [])))]
#[delete("/{id}/mcp-servers/{server_id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn detach_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let agent_id: AgentId = parse_id("agent", &path.0)?;
    let server_id: McpServerId = parse_id("mcp server", &path.1)?;
    tenant.store(&state.store).detach(&tenant.actor(), agent_id, server_id).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    Ok(HttpResponse::NoContent().finish())
}
