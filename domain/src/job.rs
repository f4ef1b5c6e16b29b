//! What a durable job does: the one contract between the store, which queues a job in the
//! transaction of the change that calls for it, and the worker, which runs it
//! (`switchboard_worker::jobs`, one handler file per kind). The `kind` column of the `jobs` table
//! is the enum's tag; the payload column holds the variant's fields.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{AgentId, McpServerId};

/// A job, by kind. Wire tags (the `kind` column): `revoke_tokens`, `deliver_event`,
/// `rediscover_server`, `purge_tenant`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// RFC 7009 revocation of a disconnected grant's tokens at its provider, then their purge.
    RevokeTokens(Box<RevokeTokens>),
    /// One connection event to the tenant's webhook.
    DeliverEvent { event_id: uuid::Uuid },
    /// The daily rediscovery of one server.
    RediscoverServer { mcp_server_id: McpServerId },
    /// The last step of a tenant's deletion, once its revocations and deliveries are done.
    PurgeTenant,
}

pub const REVOKE_TOKENS: &str = "revoke_tokens";
pub const DELIVER_EVENT: &str = "deliver_event";
pub const REDISCOVER_SERVER: &str = "rediscover_server";
pub const PURGE_TENANT: &str = "purge_tenant";

/// What revoking a grant needs, snapshotted when it was disconnected (its server may be gone by
/// the time the job runs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeTokens {
    pub connection_id: uuid::Uuid,
    pub user_id: String,
    pub agent_id: AgentId,
    pub mcp_server_id: McpServerId,
    /// The token set, sealed for the grant key (base64).
    pub sealed: String,
    /// The client snapshot: `None` for jobs queued before snapshots existed (the handler reads
    /// the server then), `Some` — even of nothing — when it was taken.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Option<String>>,
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// The client secret, sealed for this job (base64).
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Jobs queued before the method was snapshotted by name say `basic` or `post` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

impl RevokeTokens {
    /// The method to authenticate with, by its RFC name, old snapshots included.
    #[must_use]
    pub fn auth_method(&self) -> Option<&str> {
        self.token_endpoint_auth_method.as_deref().or(match self.client_auth.as_deref() {
            Some("post") => Some("client_secret_post"),
            Some(_) => Some("client_secret_basic"),
            None => None,
        })
    }
}

/// A field that is there, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl Job {
    /// The wire tag (the `kind` column).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RevokeTokens(_) => REVOKE_TOKENS,
            Self::DeliverEvent { .. } => DELIVER_EVENT,
            Self::RediscoverServer { .. } => REDISCOVER_SERVER,
            Self::PurgeTenant => PURGE_TENANT,
        }
    }

    /// The `kind` column and the payload column of this job.
    pub fn to_columns(&self) -> Result<(&'static str, String), serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        if let Some(fields) = value.as_object_mut() {
            fields.remove("kind");
        }
        Ok((self.kind(), value.to_string()))
    }

    /// A job read back from its two columns.
    pub fn from_columns(kind: &str, payload: &str) -> Result<Self, serde_json::Error> {
        let mut value: serde_json::Value = serde_json::from_str(payload)?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert("kind".into(), kind.into());
        }
        serde_json::from_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke() -> RevokeTokens {
        RevokeTokens {
            connection_id: uuid::Uuid::now_v7(),
            user_id: "u".into(),
            agent_id: AgentId::new(),
            mcp_server_id: McpServerId::new(),
            sealed: "c2VhbGVk".into(),
            client_id: Some(None),
            revocation_url: None,
            client_secret: None,
            token_endpoint_auth_method: Some("none".into()),
            client_auth: None,
            token_endpoint_auth_methods_supported: vec![],
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_columns_under_its_tag() {
        for job in [
            Job::RevokeTokens(Box::new(revoke())),
            Job::DeliverEvent { event_id: uuid::Uuid::now_v7() },
            Job::RediscoverServer { mcp_server_id: McpServerId::new() },
            Job::PurgeTenant,
        ] {
            let (kind, payload) = job.to_columns().ok().unwrap_or_default();
            assert_eq!(kind, job.kind());
            assert!(!payload.contains("\"kind\""), "{payload}");
            assert_eq!(Job::from_columns(kind, &payload).ok(), Some(job));
        }
        assert!(Job::from_columns("reticulate_splines", "{}").is_err());
        assert!(Job::from_columns(DELIVER_EVENT, "{}").is_err());
    }

    #[test]
    fn old_revocation_payloads_still_read() {
        let r = revoke();
        // Before the client snapshot: no client_id key at all.
        let old = serde_json::json!({"connection_id": r.connection_id, "user_id": "u", "agent_id": r.agent_id,
            "mcp_server_id": r.mcp_server_id, "sealed": "c2VhbGVk"});
        let Ok(Job::RevokeTokens(read)) = Job::from_columns(REVOKE_TOKENS, &old.to_string()) else {
            panic!("an old payload no longer reads");
        };
        assert_eq!(read.client_id, None);
        // A snapshot of a server without a client id, with the method named the old way.
        let snap = serde_json::json!({"connection_id": r.connection_id, "user_id": "u", "agent_id": r.agent_id,
            "mcp_server_id": r.mcp_server_id, "sealed": "c2VhbGVk", "client_id": null, "client_auth": "post"});
        let Ok(Job::RevokeTokens(read)) = Job::from_columns(REVOKE_TOKENS, &snap.to_string()) else {
            panic!("a snapshot payload no longer reads");
        };
        assert_eq!(read.client_id, Some(None));
        assert_eq!(read.auth_method(), Some("client_secret_post"));
    }
}
