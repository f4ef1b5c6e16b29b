//! `/v1/settings/identity-provider`: the OpenID Connect provider a tenant's users sign in with
//! when a stock MCP client connects to its gateway (the gateway is then the OAuth authorization
//! server of its routes, issuer `{public_url}/oauth/{tenant}`). Saving discovers and checks the
//! provider's metadata first; a provider that cannot be used is a 422 naming `issuer`, and
//! nothing stored changes.

use actix_web::{HttpResponse, delete, get, put, web};
use serde::Serialize;
use switchboard_domain::sign_in::{IdentityProvider, IdpMetadata, SecretChange, validate_identity_provider};
use switchboard_domain::{DomainError, FieldError};
use utoipa_actix_web::service_config::ServiceConfig;

use super::SecretView;
use crate::auth::TenantContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_identity_provider).service(put_identity_provider).service(delete_identity_provider);
}

/// What the provider's metadata said when the settings were saved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiscoveredProvider {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Whether the provider sends RFC 9207 `iss` (then its absence is refused).
    pub iss_parameter_supported: bool,
}

/// The tenant's identity provider.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityProviderResponse {
    pub issuer: String,
    pub client_id: String,
    /// Write-only: whether a secret is stored (absent for a public client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretView>,
    pub scopes: Vec<String>,
    /// The ID-token claim that becomes the `user_id` of grants and tickets.
    pub user_claim: String,
    /// Claims an ID token must carry to sign in.
    pub required_claims: std::collections::BTreeMap<String, String>,
    /// Only verified emails of these domains may sign in (empty: any).
    pub allowed_email_domains: Vec<String>,
    /// Register this exact redirect URI for the client at the provider.
    pub redirect_uri: String,
    /// The issuer MCP clients see: the gateway's authorization server for this tenant.
    pub authorization_server: String,
    pub discovered: DiscoveredProvider,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct IdentityProviderRequest {
    /// The provider's issuer, exactly as its metadata states it (https; http only for loopback in
    /// development).
    #[schema(value_type = super::settings::HttpsUrl)]
    issuer: String,
    #[schema(min_length = 1, max_length = 512)]
    client_id: String,
    /// Omit to keep the stored secret; `null` removes it (a public client).
    #[schema(min_length = 1, max_length = 4096)]
    client_secret: Option<String>,
    /// `openid` is always included. Default `["openid"]`.
    #[schema(max_items = 20)]
    scopes: Option<Vec<String>>,
    /// The claim naming the user (default `sub`; `email` — which must then be verified — or
    /// `preferred_username` are common).
    #[schema(min_length = 1, max_length = 128)]
    user_claim: Option<String>,
    /// Claims an ID token must carry to sign in: a string equal to the value, or an array
    /// containing it (`{"groups": "mcp-users"}`, `{"hd": "acme.com"}`, `{"tid": "…"}`).
    required_claims: Option<std::collections::BTreeMap<String, String>>,
    /// Only verified emails of these domains may sign in.
    allowed_email_domains: Option<Vec<String>>,
}

async fn response(
    state: &AppState,
    tenant: &TenantContext,
    idp: IdentityProvider,
) -> Result<IdentityProviderResponse, ApiError> {
    let slug =
        state.gateway.tenant_slug(tenant.tenant_id).await.unwrap_or_else(|_| tenant.tenant_id.0.simple().to_string());
    let public = state.runtime.config().public_url.trim_end_matches('/').to_owned();
    Ok(IdentityProviderResponse {
        client_secret: SecretView::from_hint(idp.client_secret.as_ref().map(|s| s.last4()).as_ref()),
        issuer: idp.issuer,
        client_id: idp.client_id,
        scopes: idp.scopes,
        user_claim: idp.user_claim,
        required_claims: idp.rules.required_claims,
        allowed_email_domains: idp.rules.allowed_email_domains,
        redirect_uri: format!("{public}/oauth/{slug}/callback"),
        authorization_server: format!("{public}/oauth/{slug}"),
        discovered: DiscoveredProvider {
            authorization_endpoint: idp.metadata.authorization_endpoint,
            token_endpoint: idp.metadata.token_endpoint,
            jwks_uri: idp.metadata.jwks_uri,
            iss_parameter_supported: idp.metadata.iss_parameter_supported,
        },
        updated_at: idp.updated_at,
    })
}

/// The tenant's identity provider (404 when none is configured).
#[utoipa::path(tag = "settings", responses((status = 200, body = IdentityProviderResponse)), security(("api_key" = [])))]
#[get("/v1/settings/identity-provider")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_identity_provider(
    state: web::Data<AppState>,
    tenant: TenantContext,
) -> Result<web::Json<IdentityProviderResponse>, ApiError> {
    let idp = tenant
        .store(&state.store)
        .identity_provider()
        .await?
        .ok_or_else(|| DomainError::not_found("identity provider", "settings"))?;
    Ok(web::Json(response(&state, &tenant, idp).await?))
}

/// Configure the OpenID Connect provider users sign in with when an MCP client connects to a
/// gateway route. Its metadata is discovered and checked before anything is saved.
#[utoipa::path(
    tag = "settings",
    request_body = IdentityProviderRequest,
    responses((status = 200, body = IdentityProviderResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[put("/v1/settings/identity-provider")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn put_identity_provider(
    state: web::Data<AppState>,
    tenant: TenantContext,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<IdentityProviderResponse>, ApiError> {
    let spec = validate_identity_provider(state.settings.policy(), &body)?;
    let store = tenant.store(&state.store);
    let found = switchboard_discovery::oidc::provider_metadata(&state.runtime.fetcher, &spec.issuer).await.map_err(|why| {
        DomainError::Invalid(vec![FieldError::new("issuer", "unusable_provider", why).with_hint(
            "give the issuer URL whose /.well-known/openid-configuration describes the provider, e.g. https://accounts.google.com",
        )])
    })?;
    let old = store.identity_provider().await?;
    let same_provider = old.as_ref().is_some_and(|o| o.issuer == found.issuer && o.client_id == spec.client_id);
    let client_secret = match spec.client_secret {
        SecretChange::Set(s) => Some(s),
        SecretChange::Remove => None,
        // The stored secret goes only to the provider it was given for.
        SecretChange::Keep if same_provider => old.as_ref().and_then(|o| o.client_secret.clone()),
        SecretChange::Keep if old.as_ref().is_some_and(|o| o.client_secret.is_some()) => {
            return Err(DomainError::Invalid(vec![FieldError::new(
                "client_secret",
                "required",
                "the issuer or client_id changed: give the client_secret for the new one (or null for a public client)",
            )])
            .into());
        }
        SecretChange::Keep => None,
    };
    let idp = IdentityProvider {
        issuer: found.issuer,
        client_id: spec.client_id,
        client_secret,
        scopes: spec.scopes,
        user_claim: spec.user_claim,
        rules: spec.rules,
        metadata: IdpMetadata {
            authorization_endpoint: found.authorization_endpoint.to_string(),
            token_endpoint: found.token_endpoint.to_string(),
            jwks_uri: found.jwks_uri.to_string(),
            iss_parameter_supported: found.iss_parameter_supported,
            token_endpoint_auth_methods: found.token_endpoint_auth_methods,
        },
        updated_at: switchboard_domain::clock::now(),
    };
    store.put_identity_provider(&tenant.actor(), &idp).await?;
    // Another provider or another claim names users differently: what the old one signed in ends.
    if old.is_some_and(|o| o.issuer != idp.issuer || o.user_claim != idp.user_claim) {
        store.revoke_gateway_families(None, "identity_provider_changed").await?;
        state.changed(switchboard_worker::changes::Change::Tickets { tenant: tenant.tenant_id });
    }
    Ok(web::Json(response(&state, &tenant, idp).await?))
}

/// Stop signing users in: every token issued to MCP clients is revoked at once; gateway routes
/// take session tickets only.
#[utoipa::path(tag = "settings", responses((status = 204)), security(("api_key" = [])))]
#[delete("/v1/settings/identity-provider")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn delete_identity_provider(
    state: web::Data<AppState>,
    tenant: TenantContext,
) -> Result<HttpResponse, ApiError> {
    let store = tenant.store(&state.store);
    if !store.delete_identity_provider(&tenant.actor()).await? {
        return Err(DomainError::not_found("identity provider", "settings").into());
    }
    store.revoke_gateway_families(None, "identity_provider_deleted").await?;
    state.changed(switchboard_worker::changes::Change::Tickets { tenant: tenant.tenant_id });
    Ok(HttpResponse::NoContent().finish())
}
