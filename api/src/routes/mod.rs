//! HTTP routes, one module per resource. Handlers extract, authorize, call the domain and map the
//! response; nothing else. Every handler is utoipa-annotated and registered through
//! `utoipa_actix_web`, so the OpenAPI document is collected from the registrations themselves.

pub mod admin;
pub mod agents;
pub mod audit;
pub mod client_setup;
pub mod connections;
pub mod consent;
pub mod diagnose;
pub mod idempotency;
pub mod identity_provider;
pub mod mcp_server_schema;
pub mod mcp_servers;
pub mod oauth;
pub mod ops;
pub mod runtime;
pub mod runtime_events;
pub mod session_tickets;
pub mod settings;
pub mod users;
pub mod webhook;

use actix_web::web;
use serde::{Deserialize, Serialize};
use switchboard_domain::DomainError;
use switchboard_domain::page::PageRequest;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    ops::configure(cfg);
    oauth::configure(cfg);
    consent::configure(cfg);
    cfg.service(utoipa_actix_web::scope("/v1/admin").configure(admin::configure));
    cfg.service(utoipa_actix_web::scope("/v1/mcp-servers").configure(mcp_servers::configure));
    cfg.service(utoipa_actix_web::scope("/v1/agents").configure(agents::configure));
    audit::configure(cfg);
    cfg.service(utoipa_actix_web::scope("/v1/session-tickets").configure(session_tickets::configure));
    cfg.service(utoipa_actix_web::scope("/v1/runtime").configure(runtime::configure));
    cfg.service(utoipa_actix_web::scope("/v1/connections").configure(connections::configure));
    connections::configure_issuances(cfg);
    settings::configure(cfg);
    identity_provider::configure(cfg);
    users::configure(cfg);
    webhook::configure(cfg);
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(self.limit.as_deref(), self.cursor.as_deref())?)
    }
}

/// Parses an id from the path; what does not parse cannot exist, so it is a 404.
pub fn parse_id<T: From<uuid::Uuid>>(kind: &'static str, raw: &str) -> Result<T, ApiError> {
    uuid::Uuid::parse_str(raw).map(T::from).map_err(|_| DomainError::not_found(kind, raw).into())
}

/// Reads an optional JSON body: empty means `None`.
pub fn optional_json(body: &web::Bytes) -> Result<Option<serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| ApiError::BadRequest {
        code: switchboard_domain::ErrorCode::InvalidJson,
        detail: format!("the body is not valid JSON: {e}"),
        hint: None,
    })
}

/// `{"set": true, "last4": "…"}`: how a secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    pub set: bool,
    /// The last four characters; absent for secrets shorter than 12 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
}

impl SecretView {
    pub fn from_hint(hint: Option<&String>) -> Option<Self> {
        hint.map(|h| Self { set: true, last4: (!h.is_empty()).then(|| h.clone()) })
    }
}

#[cfg(test)]
mod tests {
    /// Every route module but the admin plane's, which spans tenants by design.
    const TENANT_PLANE: &[(&str, &str)] = &[
        ("agents.rs", include_str!("agents.rs")),
        ("audit.rs", include_str!("audit.rs")),
        ("connections.rs", include_str!("connections.rs")),
        ("consent.rs", include_str!("consent.rs")),
        ("mcp_servers.rs", include_str!("mcp_servers.rs")),
        ("oauth.rs", include_str!("oauth.rs")),
        ("runtime.rs", include_str!("runtime.rs")),
        ("runtime_events.rs", include_str!("runtime_events.rs")),
        ("session_tickets.rs", include_str!("session_tickets.rs")),
        ("settings.rs", include_str!("settings.rs")),
        ("identity_provider.rs", include_str!("identity_provider.rs")),
        ("client_setup.rs", include_str!("client_setup.rs")),
        ("users.rs", include_str!("users.rs")),
        ("webhook.rs", include_str!("webhook.rs")),
    ];

    /// A tenant-plane handler reaches data only through its credential's scoped store
    /// (`tenant.store(..)`, `ticket.store(..)`): naming a tenant id itself is how another
    /// tenant's rows could be reached.
    #[test]
    fn tenant_plane_handlers_take_the_tenant_from_the_credential() {
        for (file, source) in TENANT_PLANE {
            for line in source.lines() {
                assert!(!line.contains(".tenant(") || line.trim_start().starts_with("//"), "{file}: {}", line.trim());
            }
        }
    }
}
