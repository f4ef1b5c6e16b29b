//! `/v1/connections`: the consent grants of a tenant (tenant API key). One per (user, agent,
//! server); deleting one revokes it and leaves every other untouched.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_domain::connection::{Connection, ConnectionStatus};
use switchboard_domain::page::PageRequest;
use switchboard_domain::store::ConnectionFilter;
use switchboard_domain::{AgentId, McpServerId};
use utoipa_actix_web::service_config::ServiceConfig;

use super::parse_id;
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_connections).service(get_connection).service(delete_connection).service(create_access_token);
}

/// `/v1/issuances`, registered at the root.
pub fn configure_issuances(cfg: &mut ServiceConfig) {
    cfg.service(list_issuances);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionResponse {
    pub id: uuid::Uuid,
    pub user_id: String,
    pub agent_id: uuid::Uuid,
    pub mcp_server_id: uuid::Uuid,
    /// `pending_consent`, `connected`, `needs_reauth`, `revoked`, `error`, ….
    pub status: &'static str,
    pub issuer: Option<String>,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    pub connected_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<switchboard_domain::connection::LastError>,
}

impl From<Connection> for ConnectionResponse {
    fn from(c: Connection) -> Self {
        Self {
            id: c.id,
            user_id: c.key.user_id,
            agent_id: c.key.agent_id.0,
            mcp_server_id: c.key.mcp_server_id.0,
            status: c.status.as_str(),
            issuer: c.issuer,
            resource: c.resource,
            scopes: c.scopes,
            connected_at: c.connected_at,
            expires_at: c.expires_at,
            last_error: c.last_error,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionList {
    pub data: Vec<ConnectionResponse>,
    pub next_cursor: Option<String>,
}

/// `?user_id=&agent_id=&mcp_server_id=&status=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionQuery {
    #[param(min_length = 1)]
    pub user_id: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    pub agent_id: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    pub mcp_server_id: Option<String>,
    /// One of the connection statuses (ignored by the issuance list).
    #[param(pattern = "^(not_connected|pending_consent|connected|refreshing|expired|needs_reauth|revoked|error)$")]
    pub status: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
}

fn id_filter<T: From<uuid::Uuid>>(field: &'static str, raw: Option<&str>) -> Result<Option<T>, ApiError> {
    raw.map(|r| {
        uuid::Uuid::try_parse(r).map(T::from).map_err(|_| {
            switchboard_domain::DomainError::invalid(field, "invalid", format!("{field} must be a UUID")).into()
        })
    })
    .transpose()
}

fn user_filter(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        Some("") => {
            Err(switchboard_domain::DomainError::invalid("user_id", "invalid", "user_id must not be empty").into())
        }
        other => Ok(other.map(str::to_owned)),
    }
}

fn status_filter(raw: Option<&str>) -> Result<Option<ConnectionStatus>, ApiError> {
    raw.map(|s| {
        s.parse::<ConnectionStatus>().map_err(|_| {
            let names: Vec<&str> = ConnectionStatus::ALL.iter().map(|s| s.as_str()).collect();
            switchboard_domain::DomainError::invalid(
                "status",
                "invalid",
                format!("status must be one of: {}", names.join(", ")),
            )
            .into()
        })
    })
    .transpose()
}

/// List consent grants, oldest first.
#[utoipa::path(tag = "connections", params(ConnectionQuery), responses((status = 200, body = ConnectionList)), security(("api_key" = [])))]
#[get("")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn list_connections(
    state: web::Data<AppState>,
    tenant: TenantContext,
    q: web::Query<ConnectionQuery>,
) -> Result<web::Json<ConnectionList>, ApiError> {
    let page = PageRequest::parse(q.limit.as_deref(), q.cursor.as_deref())?;
    let filter = ConnectionFilter {
        user_id: user_filter(q.user_id.as_deref())?,
        agent_id: id_filter::<AgentId>("agent_id", q.agent_id.as_deref())?,
        mcp_server_id: id_filter::<McpServerId>("mcp_server_id", q.mcp_server_id.as_deref())?,
        status: status_filter(q.status.as_deref())?,
    };
    let page = tenant.store(&state.store).list_connections(page, &filter).await?;
    Ok(web::Json(ConnectionList {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Get a consent grant.
#[utoipa::path(tag = "connections", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = ConnectionResponse)), security(("api_key" = [])))]
#[get("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_connection(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<ConnectionResponse>, ApiError> {
    let id: uuid::Uuid = parse_id("connection", &id)?;
    Ok(web::Json(tenant.store(&state.store).get_connection(id).await?.into()))
}

/// Revoke a consent grant: unusable at once, its tokens purged.
#[utoipa::path(tag = "connections", params(("id" = uuid::Uuid, Path)), responses((status = 204)), security(("api_key" = [])))]
#[delete("/{id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn delete_connection(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: uuid::Uuid = parse_id("connection", &id)?;
    state.runtime.lifecycle.revoke(tenant.tenant_id, id, &tenant.actor()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A usable access token for a grant, for the integrator's own calls to the MCP server.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccessTokenResponse {
    pub access_token: String,
    /// When it stops working; null when the provider did not say.
    pub expires_at: Option<DateTime<Utc>>,
    pub token_type: String,
    /// The RFC 8707 resource (the MCP server) the token is for: send it there and nowhere else.
    pub resource: Option<String>,
}

/// A valid access token for a grant: refreshed first (once, however many callers ask at the same
/// time) when it expires within 60 seconds. Recorded as an issuance. A grant that needs a new
/// consent answers 409 `reauth_required` with the `auth_url` to send the user to.
#[utoipa::path(tag = "connections", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = AccessTokenResponse)), security(("api_key" = [])))]
#[post("/{id}/access-token")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn create_access_token(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<AccessTokenResponse>, ApiError> {
    use switchboard_worker::lifecycle::AccessToken;
    let id: uuid::Uuid = parse_id("connection", &id)?;
    match state.runtime.lifecycle.issue_access_token(tenant.tenant_id, id).await? {
        AccessToken::Issued { tokens, resource } => Ok(web::Json(AccessTokenResponse {
            access_token: tokens.access_token.expose().to_owned(),
            expires_at: tokens.expires_at,
            token_type: tokens.token_type,
            resource,
        })),
        AccessToken::ReauthRequired { auth_url } => Err(ApiError::ReauthRequired { auth_url }),
        AccessToken::Unavailable => {
            Err(ApiError::TokenUnavailable { message: "the provider could not be reached to refresh it".into() })
        }
        AccessToken::NotConnected { status } => {
            Err(ApiError::NotConnected(format!("this connection is {} and holds no access token", status.as_str())))
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuanceResponse {
    pub id: uuid::Uuid,
    pub user_id: String,
    pub agent_id: uuid::Uuid,
    pub mcp_server_id: uuid::Uuid,
    /// `issued`, `refused` or `revoked`.
    pub outcome: String,
    pub reason: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuanceList {
    pub data: Vec<IssuanceResponse>,
    pub next_cursor: Option<String>,
}

/// Tokens obtained, refused or revoked, newest first (never a token value).
#[utoipa::path(tag = "connections", params(ConnectionQuery), responses((status = 200, body = IssuanceList)), security(("api_key" = [])))]
#[get("/v1/issuances")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn list_issuances(
    state: web::Data<AppState>,
    tenant: TenantContext,
    q: web::Query<ConnectionQuery>,
) -> Result<web::Json<IssuanceList>, ApiError> {
    let page = PageRequest::parse(q.limit.as_deref(), q.cursor.as_deref())?;
    let filter = ConnectionFilter {
        user_id: user_filter(q.user_id.as_deref())?,
        agent_id: id_filter::<AgentId>("agent_id", q.agent_id.as_deref())?,
        mcp_server_id: id_filter::<McpServerId>("mcp_server_id", q.mcp_server_id.as_deref())?,
        // Issuances have no status; a bad value is still refused, as the shared query states.
        status: status_filter(q.status.as_deref()).map(|_| None)?,
    };
    let page = tenant.store(&state.store).list_issuances(page, &filter).await?;
    let data = page
        .data
        .into_iter()
        .map(|i| IssuanceResponse {
            id: i.id,
            user_id: i.key.user_id,
            agent_id: i.key.agent_id.0,
            mcp_server_id: i.key.mcp_server_id.0,
            outcome: i.outcome,
            reason: i.reason,
            scopes: i.scopes,
            expires_at: i.expires_at,
            created_at: i.created_at,
        })
        .collect();
    Ok(web::Json(IssuanceList { data, next_cursor: page.next_cursor }))
}
