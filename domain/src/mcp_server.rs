//! MCP servers: the `config.endpoint` + nested `config.auth` contract (DESIGN.md §3) and its rules.
//!
//! A server's configuration is split in two when stored: the public part ([`McpServerConfig`]) is
//! plain JSON, the secrets ([`AuthSecrets`]) are sealed in their own column, and only their
//! [`SecretHints`] (set or not, last four characters) are kept in the clear.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::Secret;
use crate::{DomainError, McpServerId, TenantId};

/// How Switchboard authenticates to an MCP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// The server needs no credentials.
    None,
    /// A static bearer token (`auth_token`) sent as `Authorization: Bearer …`.
    Token,
    /// OAuth 2.0 client credentials grant: a machine identity, no end user.
    OauthClientCredentials,
    /// Authorization code + PKCE with a public client (no client secret).
    OauthAuthorizationCodePublicPkce,
    /// Authorization code + PKCE with a confidential client (client secret).
    OauthAuthorizationCodeConfidentialPkce,
}

impl AuthType {
    pub const ALL: [&'static str; 5] = [
        "none",
        "token",
        "oauth_client_credentials",
        "oauth_authorization_code_public_pkce",
        "oauth_authorization_code_confidential_pkce",
    ];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "token" => Self::Token,
            "oauth_client_credentials" => Self::OauthClientCredentials,
            "oauth_authorization_code_public_pkce" => Self::OauthAuthorizationCodePublicPkce,
            "oauth_authorization_code_confidential_pkce" => Self::OauthAuthorizationCodeConfidentialPkce,
            _ => return None,
        })
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Token => "token",
            Self::OauthClientCredentials => "oauth_client_credentials",
            Self::OauthAuthorizationCodePublicPkce => "oauth_authorization_code_public_pkce",
            Self::OauthAuthorizationCodeConfidentialPkce => "oauth_authorization_code_confidential_pkce",
        }
    }

    /// The `config.auth` fields this type accepts besides `type`.
    fn fields(self) -> &'static [&'static str] {
        const OAUTH_CODE: &[&str] = &["client_id", "auth_url", "token_url", "register_url", "scopes", "resource"];
        match self {
            Self::None => &[],
            Self::Token => &["auth_token"],
            Self::OauthClientCredentials => &["client_id", "client_secret", "token_url", "scopes", "resource"],
            Self::OauthAuthorizationCodePublicPkce => OAUTH_CODE,
            Self::OauthAuthorizationCodeConfidentialPkce => {
                &["client_id", "client_secret", "auth_url", "token_url", "register_url", "scopes", "resource"]
            }
        }
    }
}

const ALL_AUTH_FIELDS: &[&str] = &[
    "type",
    "auth_token",
    "client_id",
    "client_secret",
    "auth_url",
    "token_url",
    "register_url",
    "scopes",
    "resource",
];

/// The public (non-secret) part of `config.auth`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(rename = "type")]
    pub kind: AuthType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// The public part of a server's configuration, stored as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServerConfig {
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub auth: AuthConfig,
}

/// The secret part of `config.auth`, sealed at rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthSecrets {
    pub auth_token: Option<Secret>,
    pub client_secret: Option<Secret>,
}

impl AuthSecrets {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.auth_token.is_none() && self.client_secret.is_none()
    }

    #[must_use]
    pub fn hints(&self) -> SecretHints {
        SecretHints {
            auth_token: self.auth_token.as_ref().map(Secret::last4),
            client_secret: self.client_secret.as_ref().map(Secret::last4),
        }
    }

    /// The JSON that gets sealed. Only the store calls this, right before sealing.
    #[must_use]
    pub fn to_sealable_json(&self) -> Vec<u8> {
        let mut map = Map::new();
        if let Some(s) = &self.auth_token {
            map.insert("auth_token".into(), Value::String(s.expose().to_owned()));
        }
        if let Some(s) = &self.client_secret {
            map.insert("client_secret".into(), Value::String(s.expose().to_owned()));
        }
        Value::Object(map).to_string().into_bytes()
    }

    /// Reads what [`Self::to_sealable_json`] wrote.
    pub fn from_sealed_json(bytes: &[u8]) -> Result<Self, DomainError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|_| DomainError::internal("sealed secrets are not JSON"))?;
        let get = |k: &str| value.get(k).and_then(Value::as_str).map(|s| Secret::new(s.to_owned()));
        Ok(Self { auth_token: get("auth_token"), client_secret: get("client_secret") })
    }
}

/// What may be shown of the secrets: whether each is set, and its last four characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretHints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A stored MCP server.
#[derive(Clone, Debug)]
pub struct McpServer {
    pub id: McpServerId,
    pub tenant_id: TenantId,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub config: McpServerConfig,
    pub secret_hints: SecretHints,
    /// Filled by discovery; `None` until a server has been probed. Kept as the stored JSON text,
    /// passed through to responses as it is; what the lifecycle needs of it is read as typed
    /// fields through [`McpServer::facts`].
    pub discovery_result: Option<Box<serde_json::value::RawValue>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What discovery learned about a server's authorization server that the connection lifecycle
/// acts on — the consent callback, refreshes, checks, revocations and rediscovery. Written once,
/// by discovery (its `discovery_result`), and read here by name rather than by key at each use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AuthFacts {
    /// The authorization server's issuer, which grants are pinned to.
    pub issuer: Option<String>,
    /// Its RFC 7009 revocation endpoint.
    pub revocation_url: Option<String>,
    /// The client authentication method registered, or the one that last worked.
    pub token_endpoint_auth_method: Option<String>,
    /// The methods the provider advertises, in its order.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: the provider puts `iss` in its authorization responses.
    pub authorization_response_iss_parameter_supported: bool,
    /// The auth fields discovery filled in (Switchboard's to refill on rediscovery).
    pub hydrated_fields: Vec<String>,
}

impl AuthFacts {
    /// The facts in a discovery result (none when there is none, or it cannot be read).
    #[must_use]
    pub fn of(discovery_result: Option<&serde_json::value::RawValue>) -> Self {
        discovery_result.and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default()
    }
}

impl McpServer {
    /// The typed facts of its last discovery.
    #[must_use]
    pub fn facts(&self) -> AuthFacts {
        AuthFacts::of(self.discovery_result.as_deref())
    }

    /// The public view of the server as a create request would spell it; the base a PATCH merges into.
    #[must_use]
    pub fn as_request_json(&self) -> Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "slug": self.slug,
            "config": self.config,
        });
        if let (Some(d), Some(obj)) = (&self.description, v.as_object_mut()) {
            obj.insert("description".into(), Value::String(d.clone()));
        }
        v
    }
}

/// What a request says about one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretChange {
    /// Not mentioned (or sent back masked): keep what is stored.
    Keep,
    Set(Secret),
    Clear,
}

/// A validated create or update of a server.
#[derive(Clone, Debug)]
pub struct McpServerSpec {
    pub name: String,
    /// The caller's slug, when given; otherwise the store derives one from the name.
    pub slug: Option<String>,
    pub description: Option<String>,
    pub config: McpServerConfig,
    pub auth_token: SecretChange,
    pub client_secret: SecretChange,
    /// A new discovery result to store; `None` keeps the stored one.
    pub discovery_result: Option<Value>,
}

/// What discovery found that a configuration may lack.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub register_url: Option<String>,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
}

impl McpServerSpec {
    /// Fills the OAuth fields the caller left out from what discovery found; what the caller set
    /// always wins. Returns the names of the fields it filled.
    pub fn hydrate(&mut self, found: &Discovered) -> Vec<&'static str> {
        let allowed = self.config.auth.kind.fields();
        let auth = &mut self.config.auth;
        let mut filled = Vec::new();
        let mut fill = |name: &'static str, slot: &mut Option<String>, value: &Option<String>| {
            if allowed.contains(&name) && slot.is_none() && value.is_some() {
                slot.clone_from(value);
                filled.push(name);
            }
        };
        fill("auth_url", &mut auth.auth_url, &found.auth_url);
        fill("token_url", &mut auth.token_url, &found.token_url);
        fill("register_url", &mut auth.register_url, &found.register_url);
        fill("resource", &mut auth.resource, &found.resource);
        if allowed.contains(&"scopes") && auth.scopes.is_none() && !found.scopes.is_empty() {
            auth.scopes = Some(found.scopes.clone());
            filled.push("scopes");
        }
        filled
    }

    /// Whether the endpoint or the auth settings differ from `current` (then discovery runs again).
    #[must_use]
    pub fn changes_connection(&self, current: &McpServer) -> bool {
        self.config.endpoint != current.config.endpoint
            || self.config.auth != current.config.auth
            || self.auth_token != SecretChange::Keep
            || self.client_secret != SecretChange::Keep
    }

    /// The secrets after this change is applied to `stored`.
    #[must_use]
    pub fn apply_secrets(&self, stored: &AuthSecrets) -> AuthSecrets {
        let pick = |change: &SecretChange, old: &Option<Secret>, used: bool| match change {
            _ if !used => None,
            SecretChange::Keep => old.clone(),
            SecretChange::Set(s) => Some(s.clone()),
            SecretChange::Clear => None,
        };
        let fields = self.config.auth.kind.fields();
        AuthSecrets {
            auth_token: pick(&self.auth_token, &stored.auth_token, fields.contains(&"auth_token")),
            client_secret: pick(&self.client_secret, &stored.client_secret, fields.contains(&"client_secret")),
        }
    }
}

/// Which secrets are already stored, so that a PATCH need not repeat them.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoredSecrets {
    pub auth_token: bool,
    pub client_secret: bool,
}

mod validation;

pub use validation::{validate_create, validate_endpoint, validate_patch};

#[cfg(test)]
mod tests;
