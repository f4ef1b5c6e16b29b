//! `/v1/mcp-servers`: the registry of MCP servers (tenant API key).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::McpServerId;
use switchboard_domain::mcp_server::{self, AuthType, McpServer};
use utoipa_actix_web::service_config::ServiceConfig;

use super::idempotency::{self, Created};
use super::{ListQuery, SecretView, parse_id};
use crate::auth::TenantContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(discover_mcp_server)
        .service(create_mcp_server)
        .service(list_mcp_servers)
        .service(get_mcp_server)
        .service(update_mcp_server)
        .service(delete_mcp_server)
        .service(rediscover_mcp_server)
        .service(super::diagnose::diagnose_mcp_server)
        .service(super::diagnose::get_mcp_server_health);
}

/// A registered MCP server. Secrets are never shown: only whether they are set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServerResponse {
    pub id: uuid::Uuid,
    pub name: String,
    pub slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub config: McpServerConfigResponse,
    /// What discovery learned about the server; null until it has been probed.
    #[schema(value_type = Option<Object>)]
    pub discovery_result: Option<Box<serde_json::value::RawValue>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServerConfigResponse {
    pub endpoint: String,
    pub headers: BTreeMap<String, String>,
    pub auth: AuthConfigResponse,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthConfigResponse {
    #[serde(rename = "type")]
    pub kind: AuthType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<SecretView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl From<McpServer> for McpServerResponse {
    fn from(s: McpServer) -> Self {
        let auth = s.config.auth;
        Self {
            id: s.id.0,
            name: s.name,
            slug: s.slug,
            description: s.description,
            config: McpServerConfigResponse {
                endpoint: s.config.endpoint,
                headers: s.config.headers,
                auth: AuthConfigResponse {
                    kind: auth.kind,
                    client_id: auth.client_id,
                    client_secret: SecretView::from_hint(s.secret_hints.client_secret.as_ref()),
                    auth_token: SecretView::from_hint(s.secret_hints.auth_token.as_ref()),
                    auth_url: auth.auth_url,
                    token_url: auth.token_url,
                    register_url: auth.register_url,
                    scopes: auth.scopes,
                    resource: auth.resource,
                },
            },
            discovery_result: s.discovery_result,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct McpServerList {
    pub data: Vec<McpServerResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The body of a create. Documentation only: bodies are validated field by field by the domain,
/// which reports every bad field at once.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct CreateMcpServerRequest {
    /// Display name, e.g. "Linear".
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$")]
    name: String,
    /// Unique per tenant; derived from the name when omitted (`linear`, then `linear-2`).
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    slug: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = "^[^\\x00]*$")]
    description: Option<String>,
    config: McpServerConfigRequest,
}

/// A PATCH is a JSON merge patch (RFC 7396) of the create body. Omitted secrets are kept;
/// `null` clears a field; changing `config.auth.type` replaces `config.auth` whole.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct UpdateMcpServerRequest {
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$")]
    name: Option<String>,
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    slug: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = "^[^\\x00]*$")]
    description: Option<String>,
    config: Option<McpServerConfigPatchRequest>,
}

/// `config` in a PATCH: what the merge changes (its rules depend on the stored server, too).
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct McpServerConfigPatchRequest {
    #[schema(nullable = false, max_length = 2048)]
    endpoint: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    #[schema(nullable = false)]
    auth: Option<AuthConfigRequest>,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct McpServerConfigRequest {
    /// The MCP server's Streamable HTTP URL: absolute https, no userinfo, no fragment.
    #[schema(example = "https://mcp.linear.app/mcp")]
    #[schema(
        max_length = 2048,
        pattern = "^https://([A-Za-z0-9-]+\\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    endpoint: String,
    #[schema(schema_with = super::mcp_server_schema::headers)]
    headers: Option<BTreeMap<String, String>>,
    #[schema(schema_with = super::mcp_server_schema::auth)]
    auth: AuthConfigRequest,
}

/// Which fields apply depends on `type`: `token` needs `auth_token`; `oauth_client_credentials`
/// needs `client_id` and `client_secret`; the authorization-code types take the optional OAuth
/// fields (discovery fills the rest) and, for confidential clients, `client_secret` with `client_id`.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct AuthConfigRequest {
    #[serde(rename = "type")]
    kind: AuthType,
    /// Write-only.
    auth_token: Option<String>,
    client_id: Option<String>,
    /// Write-only.
    client_secret: Option<String>,
    auth_url: Option<String>,
    token_url: Option<String>,
    register_url: Option<String>,
    scopes: Option<Vec<String>>,
    /// RFC 8707 resource indicator; usually the endpoint.
    resource: Option<String>,
}

fn location(id: McpServerId) -> String {
    format!("/v1/mcp-servers/{id}")
}

/// The body of `POST /v1/mcp-servers/discover`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// The MCP server's Streamable HTTP URL.
    #[schema(example = "https://mcp.linear.app/mcp")]
    #[schema(
        max_length = 2048,
        pattern = "^https://([A-Za-z0-9-]+\\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    pub endpoint: String,
}

/// Discover how an MCP server wants to be authorized, without saving anything.
#[utoipa::path(
    tag = "mcp-servers",
    request_body = DiscoverRequest,
    responses((status = 200, body = switchboard_discovery::DiscoveryResult), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[post("/discover")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn discover_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<switchboard_discovery::DiscoveryResult>, ApiError> {
    let endpoint = mcp_server::validate_endpoint(state.settings.policy(), &body)?;
    Ok(web::Json(state.runtime.servers.discover(&endpoint).await))
}

/// Probe the server again and refill what discovery fills (auth fields, client registration).
/// When the server now names another authorization server, grants pinned to the old one need a
/// new consent (`needs_reauth`). The worker does the same once a day in the background.
#[utoipa::path(tag = "mcp-servers", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = McpServerResponse)), security(("api_key" = [])))]
#[post("/{id}/rediscover")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn rediscover_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<McpServerResponse>, ApiError> {
    let id: McpServerId = parse_id("mcp server", &id)?;
    let done =
        state.runtime.servers.rediscover(tenant.tenant_id, id, &tenant.actor(), state.settings.policy(), false).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    state.changed(switchboard_worker::changes::Change::Grants { tenant: tenant.tenant_id });
    Ok(web::Json(done.server.into()))
}

/// Register an MCP server.
#[utoipa::path(
    tag = "mcp-servers",
    request_body = CreateMcpServerRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses((status = 201, body = McpServerResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[post("")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn create_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let scope = format!("tenant:{}:create_mcp_server", tenant.tenant_id);
    idempotency::run(&state, &req, tenant.tenant_id, &scope, &body, || async {
        let mut spec = mcp_server::validate_create(state.settings.policy(), &body)?;
        state.runtime.servers.prepare(tenant.tenant_id, &mut spec, None).await;
        let server = tenant.store(&state.store).create_mcp_server(&tenant.actor(), spec).await?;
        let location = location(server.id);
        Ok(Created {
            status: StatusCode::CREATED,
            body: serde_json::to_value(McpServerResponse::from(server)).unwrap_or_default(),
            location: Some(location),
        })
    })
    .await
}

/// List MCP servers, oldest first.
#[utoipa::path(tag = "mcp-servers", params(ListQuery), responses((status = 200, body = McpServerList)), security(("api_key" = [])))]
#[get("")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn list_mcp_servers(
    state: web::Data<AppState>,
    tenant: TenantContext,
    query: web::Query<ListQuery>,
) -> Result<web::Json<McpServerList>, ApiError> {
    let page = tenant.store(&state.store).list_mcp_servers(query.page()?).await?;
    Ok(web::Json(McpServerList {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Get an MCP server.
#[utoipa::path(tag = "mcp-servers", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = McpServerResponse)), security(("api_key" = [])))]
#[get("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<McpServerResponse>, ApiError> {
    let id: McpServerId = parse_id("mcp server", &id)?;
    Ok(web::Json(tenant.store(&state.store).get_mcp_server(id).await?.into()))
}

/// Update an MCP server (JSON merge patch; omitted secrets are kept).
#[utoipa::path(
    tag = "mcp-servers",
    params(("id" = uuid::Uuid, Path)),
    request_body = UpdateMcpServerRequest,
    responses((status = 200, body = McpServerResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[patch("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn update_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<McpServerResponse>, ApiError> {
    let id: McpServerId = parse_id("mcp server", &id)?;
    let store = tenant.store(&state.store);
    let current = store.get_mcp_server(id).await?;
    let mut spec = mcp_server::validate_patch(state.settings.policy(), &current, &body)?;
    if spec.changes_connection(&current) {
        state.runtime.servers.prepare(tenant.tenant_id, &mut spec, Some(&current)).await;
    }
    let server = store.update_mcp_server(&tenant.actor(), id, spec, None).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    Ok(web::Json(server.into()))
}

/// Delete an MCP server and its attachments.
#[utoipa::path(tag = "mcp-servers", params(("id" = uuid::Uuid, Path)), responses((status = 204)), security(("api_key" = [])))]
#[delete("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn delete_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: McpServerId = parse_id("mcp server", &id)?;
    tenant.store(&state.store).delete_mcp_server(&tenant.actor(), id).await?;
    state.changed(switchboard_worker::changes::Change::Routes { tenant: tenant.tenant_id });
    state.changed(switchboard_worker::changes::Change::Grants { tenant: tenant.tenant_id });
    state.runtime.wakeups.wake();
    Ok(HttpResponse::NoContent().finish())
}
