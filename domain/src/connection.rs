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

/// Refresh at least this often even when the access token lives longer: some providers drop refresh
/// tokens that go unused.
pub const MAX_REFRESH_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Never schedule refreshes closer than this (a provider answering `expires_in: 0` must not make
/// the worker spin).
pub const MIN_REFRESH_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// When a token set is next due for a proactive refresh: at 80 % of the access token's life, at
/// most 24 hours away, at least 5 seconds away; never for a set without a refresh token.
#[must_use]
pub fn next_refresh_at(tokens: &TokenSet, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    tokens.refresh_token.as_ref()?;
    let at = tokens.expires_at.map_or(MAX_REFRESH_INTERVAL, |e| (e - now) * 4 / 5);
    Some(now + at.clamp(MIN_REFRESH_INTERVAL, MAX_REFRESH_INTERVAL))
}

/// When a token that lives `expires_in` seconds from `now` expires, capped at ten years: a
/// provider's lifetime is outside input, and date arithmetic must not overflow on it.
#[must_use]
pub fn expiry(now: DateTime<Utc>, expires_in: u64) -> DateTime<Utc> {
    const TEN_YEARS: i64 = 10 * 366 * 24 * 3600;
    let secs = i64::try_from(expires_in).unwrap_or(i64::MAX).min(TEN_YEARS);
    now.checked_add_signed(chrono::TimeDelta::seconds(secs)).unwrap_or(now)
}

/// The retry delay after `failures` consecutive transient refresh failures: exponential from 5 s,
/// capped at 10 minutes, with up to 20 % jitter (`jitter` in 0..=1) so that a provider outage does
/// not end in a synchronized stampede; a `Retry-After` the provider sent wins when longer.
#[must_use]
pub fn refresh_backoff(failures: u32, jitter: f64, retry_after: Option<u64>) -> chrono::TimeDelta {
    let base = 5_i64.saturating_mul(1_i64 << failures.min(10)).min(600);
    let jittered = (base as f64 * (1.0 + 0.2 * jitter.clamp(0.0, 1.0))) as i64;
    let secs = retry_after.map_or(jittered, |r| jittered.max(i64::try_from(r).unwrap_or(i64::MAX)));
    chrono::TimeDelta::seconds(secs.min(3600))
}

#[cfg(test)]
mod refresh_tests {
    use super::*;

    fn set(refresh: bool, expires_in: Option<i64>, now: DateTime<Utc>) -> TokenSet {
        TokenSet {
            access_token: Secret::new("a".into()),
            refresh_token: refresh.then(|| Secret::new("r".into())),
            token_type: "Bearer".into(),
            expires_at: expires_in.map(|s| now + chrono::TimeDelta::seconds(s)),
            scope: None,
        }
    }

    #[test]
    fn refreshes_are_scheduled_ahead_of_expiry_and_at_least_daily() {
        let now = crate::clock::now();
        let secs = |t: Option<DateTime<Utc>>| t.map(|t| (t - now).num_seconds());
        assert_eq!(secs(next_refresh_at(&set(true, Some(3600), now), now)), Some(2880));
        assert_eq!(secs(next_refresh_at(&set(true, Some(7 * 86_400), now), now)), Some(86_400));
        assert_eq!(secs(next_refresh_at(&set(true, None, now), now)), Some(86_400));
        assert_eq!(secs(next_refresh_at(&set(true, Some(0), now), now)), Some(5));
        assert_eq!(secs(next_refresh_at(&set(true, Some(-60), now), now)), Some(5));
        assert_eq!(next_refresh_at(&set(false, Some(3600), now), now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        assert_eq!(refresh_backoff(0, 0.0, None).num_seconds(), 5);
        assert_eq!(refresh_backoff(3, 0.0, None).num_seconds(), 40);
        assert_eq!(refresh_backoff(30, 0.0, None).num_seconds(), 600);
        assert_eq!(refresh_backoff(0, 1.0, None).num_seconds(), 6);
        assert_eq!(refresh_backoff(0, 0.0, Some(120)).num_seconds(), 120);
    }
}
