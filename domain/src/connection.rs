//! Connections: one consent grant per (tenant, user, agent, server), and the authorization-code
//! flows that create them. Token sets are sealed with AAD bound to the full grant key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::Secret;
use crate::{AgentId, McpServerId, TenantId};

/// DESIGN.md §4 statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    NotConnected,
    PendingConsent,
    Connected,
    Refreshing,
    Expired,
    NeedsReauth,
    Revoked,
    Error,
}

impl ConnectionStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::PendingConsent => "pending_consent",
            Self::Connected => "connected",
            Self::Refreshing => "refreshing",
            Self::Expired => "expired",
            Self::NeedsReauth => "needs_reauth",
            Self::Revoked => "revoked",
            Self::Error => "error",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "pending_consent" => Self::PendingConsent,
            "connected" => Self::Connected,
            "refreshing" => Self::Refreshing,
            "expired" => Self::Expired,
            "needs_reauth" => Self::NeedsReauth,
            "revoked" => Self::Revoked,
            "error" => Self::Error,
            _ => Self::NotConnected,
        }
    }
}

/// Whose grant: the full key every lookup uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantKey {
    pub tenant_id: TenantId,
    pub user_id: String,
    pub agent_id: AgentId,
    pub mcp_server_id: McpServerId,
}

#[derive(Clone, Debug)]
pub struct Connection {
    pub id: uuid::Uuid,
    pub key: GrantKey,
    pub status: ConnectionStatus,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_error: Option<serde_json::Value>,
}

/// Tokens as the provider issued them. `Debug` shows no token ([`Secret`] redacts itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenSet {
    #[serde(with = "secret_string")]
    pub access_token: Secret,
    #[serde(default, with = "opt_secret_string")]
    pub refresh_token: Option<Secret>,
    pub token_type: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
}

mod secret_string {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::crypto::Secret;

    pub fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
        String::deserialize(de).map(Secret::new)
    }
}

mod opt_secret_string {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::crypto::Secret;

    #[expect(clippy::ref_option, reason = "serde's `with` hands over a reference to the field")]
    pub fn serialize<S: Serializer>(s: &Option<Secret>, ser: S) -> Result<S::Ok, S::Error> {
        match s {
            Some(s) => ser.serialize_some(s.expose()),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
        Option::<String>::deserialize(de).map(|o| o.map(Secret::new))
    }
}

/// An authorization-code flow in progress: single use, ten minutes.
#[derive(Clone, Debug)]
pub struct AuthFlow {
    pub key: GrantKey,
    pub verifier: Secret,
    pub issuer: String,
    pub token_endpoint: String,
    pub resource: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub return_url: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// One token obtained, refused or revoked for a grant. Never holds a token value.
#[derive(Clone, Debug)]
pub struct Issuance {
    pub id: uuid::Uuid,
    pub key: GrantKey,
    /// `issued`, `refused` or `revoked`.
    pub outcome: String,
    pub reason: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
