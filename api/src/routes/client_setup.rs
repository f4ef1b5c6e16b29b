//! `GET /v1/agents/{id}/client-setup`: what a console shows a person who wants to use an agent
//! from their own MCP client — the agent endpoint and each route's URL, whether the tenant signs
//! users in, and ready-to-paste configuration for the common clients.

use actix_web::{get, web};
use serde::Serialize;
use switchboard_domain::AgentId;
use switchboard_domain::client_setup::{self, ClientSnippet};

use super::parse_id;
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

/// One client's configuration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SnippetResponse {
    /// `claude_code`, `claude_desktop`, `cursor`, `vscode`, `windsurf`, `mcp_inspector`.
    pub client: String,
    /// Where it goes.
    pub how: String,
    /// `json` or `shell`.
    pub format: String,
    pub content: String,
}

impl From<ClientSnippet> for SnippetResponse {
    fn from(s: ClientSnippet) -> Self {
        Self { client: s.client.into(), how: s.how.into(), format: s.format.into(), content: s.content }
    }
}

/// One attached server's own route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouteUrl {
    pub mcp_server_id: uuid::Uuid,
    pub server_slug: String,
    pub url: String,
}

/// How to point MCP clients at an agent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientSetupResponse {
    /// Every attached server as one MCP server (tools named `<server_slug>__<tool>`).
    pub agent_endpoint: String,
    /// Each attached server on its own.
    pub routes: Vec<RouteUrl>,
    /// Whether users sign in from their MCP client (the tenant has an identity provider); when
    /// false the URLs take a session ticket as bearer token (`<SESSION_TICKET>` in the snippets).
    pub sign_in: bool,
    /// The authorization server MCP clients find, when `sign_in`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_server: Option<String>,
    /// Configuration for the agent endpoint, per client.
    pub snippets: Vec<SnippetResponse>,
}

/// The agent's MCP URLs and client configuration snippets.
#[utoipa::path(tag = "agents", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = ClientSetupResponse)), security(("api_key" = [])))]
#[get("/{id}/client-setup")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_client_setup(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<ClientSetupResponse>, ApiError> {
    let id: AgentId = parse_id("agent", &id)?;
    let store = tenant.store(&state.store);
    let agent = store.get_agent(id).await?;
    let slug = store.own_tenant().await?.slug;
    let sign_in = store.identity_provider().await?.is_some();
    let public = state.runtime.config().public_url.trim_end_matches('/').to_owned();
    let attachments = state.gateway.agent_attachments(tenant.tenant_id, id).await?;
    let agent_endpoint = format!("{public}/mcp/{slug}/{}", agent.slug);
    Ok(web::Json(ClientSetupResponse {
        routes: attachments
            .iter()
            .map(|a| RouteUrl {
                mcp_server_id: a.mcp_server_id.0,
                server_slug: a.server_slug.clone(),
                url: a.gateway_url(&public, &slug),
            })
            .collect(),
        sign_in,
        authorization_server: sign_in.then(|| format!("{public}/oauth/{slug}")),
        snippets: client_setup::snippets(&agent.slug, &agent_endpoint, sign_in).into_iter().map(Into::into).collect(),
        agent_endpoint,
    }))
}
