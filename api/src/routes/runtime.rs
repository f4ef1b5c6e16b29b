//! `/v1/runtime`: what an end user's agent session sees (session ticket).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::AgentId;
use switchboard_domain::mcp_server::AuthType;
use switchboard_domain::page::PageRequest;
use switchboard_domain::ticket::{TicketError, TicketRequest};
use utoipa_actix_web::service_config::ServiceConfig;

use super::parse_id;
use crate::auth::TicketContext;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_runtime_mcp_servers);
}

/// An MCP server attached to the agent, with this user's connection to it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuntimeMcpServer {
    pub mcp_server_id: uuid::Uuid,
    pub name: String,
    pub endpoint: String,
    pub auth_type: AuthType,
    /// Whether the user must complete a consent flow (authorization-code servers).
    pub requires_user_connection: bool,
    /// `not_connected` until the user connects (the connect flow arrives with the runtime plane).
    pub connection_status: &'static str,
    pub connected_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub last_error: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuntimeMcpServerList {
    pub data: Vec<RuntimeMcpServer>,
}

/// The agent's attached servers this ticket may see, with the user's connection status.
#[utoipa::path(tag = "runtime", params(("agent_id" = uuid::Uuid, Path)), responses((status = 200, body = RuntimeMcpServerList)), security(("session_ticket" = [])))]
#[get("/agents/{agent_id}/mcp-servers")]
#[tracing::instrument(skip_all, fields(tenant.id = %ticket.tenant_id))]
pub async fn list_runtime_mcp_servers(
    state: web::Data<AppState>,
    ticket: TicketContext,
    agent_id: web::Path<String>,
) -> Result<web::Json<RuntimeMcpServerList>, ApiError> {
    let agent: AgentId = parse_id("agent", &agent_id)?;
    // The agent (and expiry) first; then each server: the ones the ticket excludes are left out.
    ticket.authorize_agent(agent, "list")?;
    let store = state.store.tenant(ticket.tenant_id);
    let mut data = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_attachments(agent, PageRequest::parse(Some("100"), cursor.as_deref())?).await?;
        for a in page.data {
            let server_id = a.mcp_server_id.to_string();
            // Servers an attenuated ticket excludes are not shown.
            match ticket.authorize(&TicketRequest { agent, server: Some(&server_id), tool: None, operation: "list" }) {
                Ok(_) => {}
                Err(TicketError::Scope) => continue,
                Err(e) => return Err(e.into()),
            }
            let server = store.get_mcp_server(a.mcp_server_id).await?;
            let kind = server.config.auth.kind;
            data.push(RuntimeMcpServer {
                mcp_server_id: server.id.0,
                name: server.name,
                endpoint: server.config.endpoint,
                auth_type: kind,
                requires_user_connection: matches!(
                    kind,
                    AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce
                ),
                connection_status: "not_connected",
                connected_at: None,
                expires_at: None,
                scopes: server.config.auth.scopes.unwrap_or_default(),
                last_error: None,
            });
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(web::Json(RuntimeMcpServerList { data }))
}
