//! `/v1/runtime`: what an end user's agent session sees (session ticket).

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::connection::GrantKey;
use switchboard_domain::mcp_server::AuthType;
use switchboard_domain::tenant::Actor;
use switchboard_domain::ticket::{TicketError, TicketRequest};
use switchboard_domain::{AgentId, DomainError, FieldError, McpServerId};
use switchboard_worker::consent::ConnectOutcome;
use utoipa_actix_web::service_config::ServiceConfig;

use super::parse_id;
use crate::auth::TicketContext;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_runtime_mcp_servers)
        .service(connect_mcp_server)
        .service(disconnect_mcp_server)
        .service(check_mcp_server)
        .service(confirm_connect_request)
        .service(super::runtime_events::stream_runtime_events);
}

/// The grant a per-server runtime call is about: the ids parsed and the ticket checked for
/// `operation` on this agent and server.
/// Slugs are offered beside ids (from the gateway's views), so a ticket narrowed by slug holds
/// here as it does on the gateway.
async fn grant(
    state: &AppState,
    ticket: &TicketContext,
    path: &(String, String),
    operation: &str,
) -> Result<GrantKey, ApiError> {
    let agent: AgentId = parse_id("agent", &path.0)?;
    let server: McpServerId = parse_id("mcp server", &path.1)?;
    let server_id = server.to_string();
    let mut request = TicketRequest { server: Some(&server_id), ..TicketRequest::new(agent, operation) };
    let attachments =
        if ticket.attenuated() { Some(state.gateway.agent_attachments(ticket.tenant_id, agent).await?) } else { None };
    let attachment = attachments.as_ref().and_then(|all| all.iter().find(|a| a.mcp_server_id == server));
    if let Some(a) = attachment {
        request.server_slug = Some(&a.server_slug);
        request.agent_slug = Some(&a.agent_slug);
    }
    let user = ticket.authorize_explained(&request)?;
    Ok(GrantKey { tenant_id: ticket.tenant_id, user_id: user, agent_id: agent, mcp_server_id: server })
}

/// `{status: "connected"}` or `{status: "pending_consent", auth_url, expires_at}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectResponse {
    pub status: &'static str,
    /// Where to send the user's browser (authorization-code servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// When the consent flow expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the handler reads the JSON itself")]
pub struct ConnectRequest {
    /// Where the consent page sends the browser afterwards: one of the tenant's `return_urls`, exactly.
    return_url: Option<String>,
}

/// Connect the ticket's user to an attached server: at once for servers without user consent,
/// else through the provider's consent page (`auth_url`).
#[utoipa::path(
    tag = "runtime",
    params(("agent_id" = uuid::Uuid, Path), ("server_id" = uuid::Uuid, Path)),
    request_body(content = Option<ConnectRequest>),
    responses((status = 200, body = ConnectResponse)),
    security(("session_ticket" = []))
)]
#[post("/agents/{agent_id}/mcp-servers/{server_id}/connect")]
#[tracing::instrument(skip_all, fields(tenant.id = %ticket.tenant_id))]
pub async fn connect_mcp_server(
    state: web::Data<AppState>,
    ticket: TicketContext,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<web::Json<ConnectResponse>, ApiError> {
    let key = grant(&state, &ticket, &path, "connect").await?;
    let body = super::optional_json(&body)?;
    if let Some(b) = &body {
        // The body is an object with `return_url` at most, as the document says.
        let mut errs = switchboard_domain::validate::Errors::default();
        match b.as_object() {
            Some(map) => switchboard_domain::validate::reject_unknown(&mut errs, map, "", &["return_url"], &[]),
            None => errs.push(FieldError::new("", "invalid_type", "the body must be a JSON object")),
        }
        if !errs.0.is_empty() {
            return Err(DomainError::Invalid(errs.0).into());
        }
    }
    let return_url = match body.as_ref().and_then(|b| b.get("return_url")).filter(|r| !r.is_null()) {
        None => None,
        Some(serde_json::Value::String(url)) => Some(url.clone()),
        Some(_) => {
            return Err(DomainError::invalid("return_url", "invalid_type", "return_url must be a string").into());
        }
    };
    Ok(web::Json(match state.runtime.lifecycle.connect(key, return_url).await? {
        ConnectOutcome::Connected => ConnectResponse { status: "connected", auth_url: None, expires_at: None },
        ConnectOutcome::PendingConsent { auth_url, expires_at } => {
            ConnectResponse { status: "pending_consent", auth_url: Some(auth_url), expires_at: Some(expires_at) }
        }
    }))
}

/// Confirm a connect request of the MCP gateway: the link in a "connect first" answer
/// (`{public_url}/connect/{request}`) starts nothing by itself. The tenant's app, where the user
/// is signed in, confirms it with that user's session ticket; only the user who triggered it
/// can, so a forwarded link is useless. The answer is `connect`'s: send the browser to
/// `auth_url`.
#[utoipa::path(
    tag = "runtime",
    params(("request" = String, Path, description = "The last segment of the connect link")),
    request_body(content = Option<ConnectRequest>),
    responses((status = 200, body = ConnectResponse)),
    security(("session_ticket" = []))
)]
#[post("/connect-requests/{request}/confirm")]
#[tracing::instrument(skip_all, fields(tenant.id = %ticket.tenant_id))]
pub async fn confirm_connect_request(
    state: web::Data<AppState>,
    ticket: TicketContext,
    request: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<ConnectResponse>, ApiError> {
    use switchboard_gateway::connect::{self, RequestError};
    let request = match connect::open(state.store.envelope(), &request) {
        Ok(r) if r.tenant == ticket.tenant_id => r,
        Ok(_) | Err(RequestError::Invalid) => {
            return Err(DomainError::not_found("connect request", "(link)").into());
        }
        Err(RequestError::Expired) => {
            return Err(DomainError::invalid(
                "request",
                "expired",
                "this connect link has expired; the agent asks again on its next call",
            )
            .into());
        }
    };
    let server = request.server.to_string();
    let user =
        ticket.authorize(&TicketRequest { server: Some(&server), ..TicketRequest::new(request.agent, "connect") })?;
    if user != request.user {
        return Err(TicketError::Scope.into());
    }
    let return_url =
        match super::optional_json(&body)?.as_ref().and_then(|b| b.get("return_url")).filter(|r| !r.is_null()) {
            None => None,
            Some(serde_json::Value::String(url)) => Some(url.clone()),
            Some(_) => {
                return Err(DomainError::invalid("return_url", "invalid_type", "return_url must be a string").into());
            }
        };
    Ok(web::Json(match state.runtime.lifecycle.connect(request.key(), return_url).await? {
        ConnectOutcome::Connected => ConnectResponse { status: "connected", auth_url: None, expires_at: None },
        ConnectOutcome::PendingConsent { auth_url, expires_at } => {
            ConnectResponse { status: "pending_consent", auth_url: Some(auth_url), expires_at: Some(expires_at) }
        }
    }))
}

/// An MCP server attached to the agent, with this user's connection to it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuntimeMcpServer {
    pub mcp_server_id: uuid::Uuid,
    pub name: String,
    pub slug: String,
    pub endpoint: String,
    /// The MCP gateway's route for this agent and server, where this ticket works as the bearer
    /// credential: `{public_url}/mcp/{tenant}/{agent}/{server}`.
    pub gateway_url: String,
    pub auth_type: AuthType,
    /// Whether the user must complete a consent flow (authorization-code servers).
    pub requires_user_connection: bool,
    /// `not_connected`, `pending_consent`, `connected`, `needs_reauth`, `error`, ….
    pub connection_status: &'static str,
    pub connected_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    pub last_error: Option<switchboard_domain::connection::LastError>,
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
    // The agent (and expiry) first — by id and slug, which the agent's attachments carry — then
    // each server: the ones the ticket excludes are left out.
    if let Err(refused) = ticket.authorize_agent(agent, None, "list") {
        // A ticket narrowed by the agent's slug: asked again with it (which only an agent this
        // tenant has can carry).
        let slug = match ticket.attenuated() {
            true => state
                .gateway
                .agent_attachments(ticket.tenant_id, agent)
                .await
                .ok()
                .and_then(|a| a.first().map(|a| a.agent_slug.clone())),
            false => None,
        };
        match slug {
            Some(slug) => ticket.authorize_agent(agent, Some(&slug), "list")?,
            None => return Err(refused),
        }
    }
    let attachments = state.gateway.agent_attachments(ticket.tenant_id, agent).await?;
    let user = ticket.user()?;
    // The user's connections, the agent's attachments and the tenant's slug all come from the
    // gateway's views: no database read once warm, and every change empties what it concerns.
    let connections = state.gateway.user_connections(ticket.tenant_id, &user, agent).await?;
    let tenant_slug = state
        .gateway
        .tenant_slug(ticket.tenant_id)
        .await
        .map_err(|_| ApiError::from(DomainError::Unavailable("the database is unreachable".into())))?;
    let public_url = &state.runtime.config().public_url;
    let attenuated = ticket.attenuated();
    let mut data = Vec::with_capacity(attachments.len());
    for a in attachments.iter() {
        let server_id = a.mcp_server_id.to_string();
        // Servers an attenuated ticket excludes are not shown (an unattenuated one excludes none).
        if attenuated {
            let request = TicketRequest {
                server: Some(&server_id),
                server_slug: Some(&a.server_slug),
                agent_slug: Some(&a.agent_slug),
                ..TicketRequest::new(agent, "list")
            };
            match ticket.authorize(&request) {
                Ok(_) => {}
                Err(TicketError::Scope) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let kind = a.config.auth.kind;
        let connection = connections.iter().find(|c| c.key.mcp_server_id == a.mcp_server_id);
        data.push(RuntimeMcpServer {
            gateway_url: a.gateway_url(public_url, &tenant_slug),
            mcp_server_id: a.mcp_server_id.0,
            name: a.server_name.clone(),
            slug: a.server_slug.clone(),
            endpoint: a.config.endpoint.clone(),
            auth_type: kind,
            requires_user_connection: matches!(
                kind,
                AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce
            ),
            connection_status: connection.map_or("not_connected", |c| c.status.as_str()),
            connected_at: connection.and_then(|c| c.connected_at),
            expires_at: connection.and_then(|c| c.expires_at),
            scopes: connection
                .filter(|c| !c.scopes.is_empty())
                .map_or_else(|| a.config.auth.scopes.clone().unwrap_or_default(), |c| c.scopes.clone()),
            last_error: connection.and_then(|c| c.last_error.clone()),
        });
    }
    Ok(web::Json(RuntimeMcpServerList { data }))
}

/// `{status: "revoked"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisconnectResponse {
    pub status: &'static str,
}

/// Revoke and forget this user's grant for this agent and server. The grant is unusable when
/// this returns; revocation at the provider comes with the worker.
#[utoipa::path(
    tag = "runtime",
    params(("agent_id" = uuid::Uuid, Path), ("server_id" = uuid::Uuid, Path)),
    responses((status = 200, body = DisconnectResponse)),
    security(("session_ticket" = []))
)]
#[post("/agents/{agent_id}/mcp-servers/{server_id}/disconnect")]
#[tracing::instrument(skip_all, fields(tenant.id = %ticket.tenant_id))]
pub async fn disconnect_mcp_server(
    state: web::Data<AppState>,
    ticket: TicketContext,
    path: web::Path<(String, String)>,
) -> Result<web::Json<DisconnectResponse>, ApiError> {
    let key = grant(&state, &ticket, &path, "disconnect").await?;
    state.runtime.lifecycle.disconnect(&key, &Actor::User(key.user_id.clone())).await?;
    Ok(web::Json(DisconnectResponse { status: "revoked" }))
}

/// What `check` found upstream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResponse {
    pub ok: bool,
    /// The tools the server lists, filtered by the attachment's allow-list.
    pub tools: Vec<String>,
    pub server_name: Option<String>,
    pub protocol_version: Option<String>,
    pub latency_ms: u64,
    /// What failed, in words: not connected, 401 from upstream, insufficient scope, unreachable….
    pub error: Option<String>,
    /// What is wrong with this connection, as findings (code, severity, evidence, fix); empty
    /// when all is well.
    pub findings: Vec<switchboard_domain::finding::Finding>,
}

/// `initialize` + `tools/list` upstream with this user's stored credentials.
#[utoipa::path(
    tag = "runtime",
    params(("agent_id" = uuid::Uuid, Path), ("server_id" = uuid::Uuid, Path)),
    responses((status = 200, body = CheckResponse)),
    security(("session_ticket" = []))
)]
#[post("/agents/{agent_id}/mcp-servers/{server_id}/check")]
#[tracing::instrument(skip_all, fields(tenant.id = %ticket.tenant_id))]
pub async fn check_mcp_server(
    state: web::Data<AppState>,
    ticket: TicketContext,
    path: web::Path<(String, String)>,
) -> Result<web::Json<CheckResponse>, ApiError> {
    let key = grant(&state, &ticket, &path, "check").await?;
    let (outcome, findings) = state.runtime.check_with_findings(&key).await?;
    let v = outcome.verification;
    Ok(web::Json(CheckResponse {
        ok: v.ok,
        tools: v.tools,
        server_name: v.server_name,
        protocol_version: v.protocol_version,
        latency_ms: outcome.latency_ms,
        error: outcome.precondition.or(v.error),
        findings,
    }))
}
