//! `/v1/settings`: the tenant's settings (tenant API key).

use actix_web::{get, put, web};
use serde::Serialize;
use switchboard_domain::tenant::{self, TenantSettings};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::TenantContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_settings).service(update_settings);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsResponse {
    /// Exact URLs `connect` may name as `return_url`; the consent page sends the browser there.
    pub return_urls: Vec<String>,
}

impl From<TenantSettings> for SettingsResponse {
    fn from(s: TenantSettings) -> Self {
        Self { return_urls: s.return_urls }
    }
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct SettingsRequest {
    /// Absolute https URLs, at most 20, matched exactly (no patterns).
    #[schema(max_items = 20, inline, value_type = Vec<HttpsUrl>)]
    return_urls: Vec<String>,
}

/// The tenant's settings.
#[utoipa::path(tag = "settings", responses((status = 200, body = SettingsResponse)), security(("api_key" = [])))]
#[get("/v1/settings")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_settings(
    state: web::Data<AppState>,
    tenant: TenantContext,
) -> Result<web::Json<SettingsResponse>, ApiError> {
    Ok(web::Json(tenant.store(&state.store).settings().await?.into()))
}

/// Replace the tenant's settings.
#[utoipa::path(
    tag = "settings",
    request_body = SettingsRequest,
    responses((status = 200, body = SettingsResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[put("/v1/settings")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn update_settings(
    state: web::Data<AppState>,
    tenant: TenantContext,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<SettingsResponse>, ApiError> {
    let settings = tenant::validate_settings(state.settings.policy(), &body)?;
    Ok(web::Json(tenant.store(&state.store).put_settings(&settings).await?.into()))
}

/// An absolute https URL without user info or fragment, as every URL Switchboard stores.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[schema(
    pattern = "^https://([A-Za-z0-9-]+\\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
)]
#[expect(dead_code, reason = "documents a string format")]
pub struct HttpsUrl(String);
