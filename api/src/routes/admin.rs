//! `/v1/admin`: tenants and their API keys (platform admin token).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::tenant::{self, Actor, CreatedApiKey, Tenant};
use switchboard_domain::{ApiKeyId, TenantId};
use utoipa_actix_web::service_config::ServiceConfig;

use super::idempotency::{self, Created};
use super::{ListQuery, optional_json, parse_id};
use crate::auth::AdminContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_tenant)
        .service(delete_tenant)
        .service(list_tenants)
        .service(get_tenant)
        .service(create_api_key)
        .service(delete_api_key)
        .service(compare_mcp_servers);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantResponse {
    pub id: uuid::Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    /// Set while the tenant is being deleted (its grants revoked, its keys gone); the tenant
    /// disappears once its revocations have run at the providers.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Tenant> for TenantResponse {
    fn from(t: Tenant) -> Self {
        Self { id: t.id.0, name: t.name, slug: t.slug, created_at: t.created_at, deleted_at: t.deleted_at }
    }
}

/// A tenant deletion under way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantDeletionResponse {
    pub id: uuid::Uuid,
    /// Always `deleting`: the tenant row goes once its revocations have run.
    pub status: &'static str,
    pub deleted_at: DateTime<Utc>,
    /// Grants revoked by this call (0 when the deletion had already started).
    pub grants_revoked: usize,
}

/// A new tenant with its first API key. The key is shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTenantResponse {
    pub id: uuid::Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    /// The tenant's first API key, `sb_…`. Store it now: it cannot be shown again.
    pub api_key: String,
    pub api_key_id: uuid::Uuid,
    pub api_key_prefix: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub data: Vec<TenantResponse>,
    pub next_cursor: Option<String>,
}

/// A new API key. `api_key` is shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKeyResponse {
    pub id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The first characters of the key, to recognise it later.
    pub prefix: String,
    pub api_key: String,
    pub created_at: DateTime<Utc>,
}

impl From<CreatedApiKey> for CreatedApiKeyResponse {
    fn from(k: CreatedApiKey) -> Self {
        Self {
            id: k.key.id.0,
            tenant_id: k.key.tenant_id.0,
            name: k.key.name,
            prefix: k.key.prefix,
            api_key: k.plaintext.expose().to_owned(),
            created_at: k.key.created_at,
        }
    }
}

#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$")]
    name: String,
    /// Derived from the name when omitted.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    slug: Option<String>,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct CreateApiKeyRequest {
    /// A label, e.g. "ci" or "console".
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]*$")]
    name: Option<String>,
}

/// Create a tenant and its first API key.
#[utoipa::path(
    tag = "admin",
    request_body = CreateTenantRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses((status = 201, body = CreatedTenantResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("admin_token" = []))
)]
#[post("/tenants")]
#[tracing::instrument(skip_all)]
pub async fn create_tenant(
    state: web::Data<AppState>,
    _admin: AdminContext,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    idempotency::run(&state, &req, TenantId(uuid::Uuid::nil()), "admin:create_tenant", &body, || async {
        let spec = tenant::validate_create(&body)?;
        let (t, key) = state.store.admin().create_tenant(&Actor::Admin, spec).await?;
        let res = CreatedTenantResponse {
            id: t.id.0,
            name: t.name,
            slug: t.slug,
            created_at: t.created_at,
            api_key: key.plaintext.expose().to_owned(),
            api_key_id: key.key.id.0,
            api_key_prefix: key.key.prefix,
        };
        Ok(Created {
            status: StatusCode::CREATED,
            body: serde_json::to_value(res).unwrap_or_default(),
            location: Some(format!("/v1/admin/tenants/{}", t.id)),
        })
    })
    .await
}

/// List tenants, oldest first.
#[utoipa::path(tag = "admin", params(ListQuery), responses((status = 200, body = TenantList)), security(("admin_token" = [])))]
#[get("/tenants")]
#[tracing::instrument(skip_all)]
pub async fn list_tenants(
    state: web::Data<AppState>,
    _admin: AdminContext,
    query: web::Query<ListQuery>,
) -> Result<web::Json<TenantList>, ApiError> {
    let page = state.store.admin().list_tenants(query.page()?).await?;
    Ok(web::Json(TenantList { data: page.data.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

/// Get a tenant.
#[utoipa::path(tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = TenantResponse)), security(("admin_token" = [])))]
#[get("/tenants/{id}")]
#[tracing::instrument(skip_all)]
pub async fn get_tenant(
    state: web::Data<AppState>,
    _admin: AdminContext,
    id: web::Path<String>,
) -> Result<web::Json<TenantResponse>, ApiError> {
    let id: TenantId = parse_id("tenant", &id)?;
    Ok(web::Json(state.store.admin().get_tenant(id).await?.into()))
}

/// Create an API key for a tenant.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<CreateApiKeyRequest>),
    responses((status = 201, body = CreatedApiKeyResponse)),
    security(("admin_token" = []))
)]
#[post("/tenants/{id}/api-keys")]
#[tracing::instrument(skip_all)]
pub async fn create_api_key(
    state: web::Data<AppState>,
    _admin: AdminContext,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant_id: TenantId = parse_id("tenant", &id)?;
    let body = optional_json(&body)?;
    let fingerprint = body.clone().unwrap_or_default();
    let scope = format!("admin:create_api_key:{tenant_id}");
    idempotency::run(&state, &req, TenantId(uuid::Uuid::nil()), &scope, &fingerprint, || async {
        let name = tenant::validate_api_key(body.as_ref())?;
        let key = state.store.admin().create_api_key(&Actor::Admin, tenant_id, name).await?;
        Ok(Created {
            status: StatusCode::CREATED,
            body: serde_json::to_value(CreatedApiKeyResponse::from(key)).unwrap_or_default(),
            location: None,
        })
    })
    .await
}

/// Delete a tenant: at once, its API keys and ticket keys stop working and every grant is
/// revoked; its tokens are then revoked at the providers by background jobs, after which the
/// tenant and all its data are deleted. Repeating the call is harmless.
#[utoipa::path(tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 202, body = TenantDeletionResponse)), security(("admin_token" = [])))]
#[delete("/tenants/{id}")]
#[tracing::instrument(skip_all)]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    _admin: AdminContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id: TenantId = parse_id("tenant", &id)?;
    let done = state.store.admin().delete_tenant(&Actor::Admin, tenant_id).await?;
    state.changed(switchboard_worker::changes::Change::Tenant { tenant: tenant_id });
    state.keys.forget_tenant(tenant_id);
    state.runtime.wakeups.wake();
    Ok(HttpResponse::Accepted().json(TenantDeletionResponse {
        id: tenant_id.0,
        status: "deleting",
        deleted_at: done.deleted_at,
        grants_revoked: done.grants_revoked,
    }))
}

/// Delete (revoke) an API key.
#[utoipa::path(tag = "admin", params(("id" = uuid::Uuid, Path), ("key_id" = uuid::Uuid, Path)), responses((status = 204)), security(("admin_token" = [])))]
#[delete("/tenants/{id}/api-keys/{key_id}")]
#[tracing::instrument(skip_all)]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    _admin: AdminContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant_id: TenantId = parse_id("tenant", &path.0)?;
    let key_id: ApiKeyId = parse_id("api key", &path.1)?;
    state.store.admin().delete_api_key(&Actor::Admin, tenant_id, key_id).await?;
    state.keys.evict(key_id);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct CompareQuery {
    /// The MCP endpoint, as tenants registered it (`config.endpoint`; a trailing slash and the
    /// case of scheme and host do not matter).
    #[param(min_length = 1, example = "https://mcp.linear.app/mcp")]
    pub endpoint: String,
}

/// Every tenant's server at one endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompareResponse {
    pub endpoint: String,
    pub data: Vec<switchboard_domain::compare::CompareRow>,
}

/// "Only some tenants fail": one row per tenant that registered this endpoint — auth type,
/// issuer, registration method, client id prefix, token endpoint auth method, scopes, resource,
/// grants by status, failure codes of the last day — with `differs` naming the fields where a
/// tenant is not like most others.
#[utoipa::path(
    tag = "admin",
    params(CompareQuery),
    responses((status = 200, body = CompareResponse)),
    security(("admin_token" = []))
)]
#[get("/mcp-servers/compare")]
#[tracing::instrument(skip_all)]
pub async fn compare_mcp_servers(
    state: web::Data<AppState>,
    _admin: AdminContext,
    query: web::Query<CompareQuery>,
) -> Result<web::Json<CompareResponse>, ApiError> {
    let endpoint = query.endpoint.trim();
    if url::Url::parse(endpoint).is_err() {
        return Err(switchboard_domain::DomainError::invalid(
            "endpoint",
            "invalid",
            "endpoint must be an absolute URL, as registered in config.endpoint",
        )
        .into());
    }
    let since = switchboard_domain::clock::now() - chrono::Duration::days(1);
    let rows = state.store.admin().compare_endpoint(endpoint, since).await?;
    Ok(web::Json(CompareResponse { endpoint: switchboard_domain::store::normalize_endpoint(endpoint), data: rows }))
}
