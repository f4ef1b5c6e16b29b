//! `discovery_result`: what discovery learned about a server, and how it learned it.

use serde::{Deserialize, Serialize};

/// One HTTP request discovery made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    pub method: String,
    pub url: String,
    /// The HTTP status, or null when no response came back (see `error`).
    pub status: Option<u16>,
    pub ms: u64,
    /// Why the request failed, in words (network errors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What this request taught discovery.
    pub learned: String,
}

/// The outcome of discovery for one endpoint. Every field is present (null when unknown) so that
/// consoles can render it without guessing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiscoveryResult {
    /// The endpoint that was probed.
    pub endpoint: String,
    /// Whether an unauthenticated MCP request was refused (401/403).
    pub requires_auth: bool,
    /// `none`, `token`, `oauth_client_credentials`, `oauth_authorization_code_public_pkce` or
    /// `oauth_authorization_code_confidential_pkce`; null when nothing can be recommended.
    pub recommended_auth_mode: Option<String>,
    /// Whether the authorization-code flow can be used (the server supports PKCE with S256).
    pub authorization_code_usable: bool,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub register_url: Option<String>,
    pub revocation_url: Option<String>,
    /// The RFC 8707 resource to request tokens for.
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    /// `challenge` (the 401's `scope`), `resource_metadata` (PRM `scopes_supported`) or `none`.
    pub scopes_source: String,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// How Switchboard authenticates its client at the token and revocation endpoints
    /// (`client_secret_basic`, `client_secret_post` or `none`): what the registration answered,
    /// else the first the provider advertises — and, after the provider refused one method
    /// (`invalid_client`) and accepted another, the one that worked.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub client_id_metadata_document_supported: bool,
    pub authorization_response_iss_parameter_supported: bool,
    pub authorization_servers: Vec<String>,
    pub resource_metadata_url: Option<String>,
    pub issuer: Option<String>,
    /// `2025-11-25` (protected resource metadata found) or `2025-03-26` (legacy: the endpoint's
    /// origin is the authorization server).
    pub spec_version: Option<String>,
    /// How a client was obtained, when one was needed: `pre_registered`, `client_id_metadata_document`,
    /// `dynamic_registration`, or null.
    pub client_registration: Option<String>,
    /// For `none`, `token` and client-credentials servers: a live `initialize` + `tools/list` with
    /// the configured credentials (null for authorization-code servers, which need a user).
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Config fields Switchboard filled from discovery (and may refill on `rediscover`).
    #[serde(default)]
    pub hydrated_fields: Vec<String>,
    /// Things that work but deserve attention.
    pub warnings: Vec<String>,
    /// The conclusion in one or two sentences, and what to do next.
    pub message: String,
    pub steps: Vec<Step>,
}

/// The outcome of a live check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    /// Tool names from `tools/list`.
    pub tools: Vec<String>,
    pub server_name: Option<String>,
    pub protocol_version: Option<String>,
    /// What failed, in words (`null` when `ok`).
    pub error: Option<String>,
    /// The upstream's HTTP status when it refused (401, 403, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// On `403 insufficient_scope`: the scopes the server's challenge asks for (step-up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
}
