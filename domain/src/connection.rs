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

    /// Every status, for parsing and for the transition table's tests.
    pub const ALL: [Self; 8] = [
        Self::NotConnected,
        Self::PendingConsent,
        Self::Connected,
        Self::Refreshing,
        Self::Expired,
        Self::NeedsReauth,
        Self::Revoked,
        Self::Error,
    ];

    /// What a request to move a grant from `self` to `next` does — the state machine's one
    /// table, which every status write of the store goes through:
    /// - a new consent does not hide a grant that works, nor the reason one needs re-consent
    ///   (with its required scopes): `connected` and `needs_reauth` stay while it is pending;
    /// - a grant the user disconnected is not brought back by a late failure: `revoked` stays
    ///   on `error`, `expired`, `needs_reauth` and `refreshing` (only a new connect or consent
    ///   moves it);
    /// - every other move happens.
    #[must_use]
    pub fn on(self, next: Self) -> Transition {
        use ConnectionStatus as S;
        match (self, next) {
            (S::Connected | S::NeedsReauth, S::PendingConsent)
            | (S::Revoked, S::Error | S::Expired | S::NeedsReauth | S::Refreshing) => Transition::Stay,
            _ => Transition::To(next),
        }
    }
}

/// The outcome of [`ConnectionStatus::on`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The grant moves to this status.
    To(ConnectionStatus),
    /// The grant keeps its status (and its `last_error`).
    Stay,
}

/// A stored status that is none of [`ConnectionStatus::ALL`]: the row was written by something
/// else than this code, and reading it as any status would be a guess.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a connection status")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for ConnectionStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownStatus(s.chars().take(64).collect()))
    }
}

/// Why a grant is not usable, as `last_error` says it (DESIGN §4): a stable `code`, a message in
/// words, and when it happened; a refresh failure adds when it is retried, an insufficient
/// scope the scopes the server asked for (a step-up consent asks for them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastError {
    /// `refresh_failed`, `reauth_required`, `insufficient_scope`, `upstream_unauthorized`,
    /// `upstream_error`, `token_exchange_failed`, `issuer_mismatch`, `access_denied`,
    /// `authorization_failed`.
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
}

impl LastError {
    #[must_use]
    pub fn new(code: &str, message: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self { code: code.to_owned(), message: message.into(), at, retry_at: None, required_scopes: vec![] }
    }

    /// The finding this error is (see [`crate::finding`]): what `diagnose`, `check` and the
    /// connection events name it.
    #[must_use]
    pub fn finding(&self) -> crate::finding::FindingCode {
        use crate::finding::FindingCode as C;
        let provider_code = crate::finding::provider_code(&self.message);
        match self.code.as_str() {
            "insufficient_scope" => C::InsufficientScope,
            "reauth_required" => C::NeedsReauth,
            "refresh_failed" => C::RefreshFailing,
            "issuer_mismatch" => C::AuthUrlMismatch,
            "token_exchange_failed" if provider_code == Some("invalid_client") => C::InvalidClient,
            "upstream_unauthorized" if self.message.to_ascii_lowercase().contains("audience") => C::ResourceMismatch,
            "upstream_unauthorized" => C::UpstreamUnauthorized,
            "upstream_error" => C::UpstreamUnavailable,
            _ => C::ConsentFailed,
        }
    }

    /// Reads a stored `last_error`; rows written before every error carried `at` take `written`
    /// (the row's last update).
    pub fn from_stored(text: &str, written: DateTime<Utc>) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Stored {
            code: String,
            #[serde(default)]
            message: String,
            at: Option<DateTime<Utc>>,
            #[serde(default)]
            retry_at: Option<DateTime<Utc>>,
            #[serde(default)]
            required_scopes: Vec<String>,
        }
        let s: Stored = serde_json::from_str(text)?;
        Ok(Self {
            code: s.code,
            message: s.message,
            at: s.at.unwrap_or(written),
            retry_at: s.retry_at,
            required_scopes: s.required_scopes,
        })
    }
}

/// Whose grant: the full key every lookup uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    pub last_error: Option<LastError>,
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

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_refused() {
        for s in ConnectionStatus::ALL {
            assert_eq!(s.as_str().parse::<ConnectionStatus>().ok(), Some(s));
        }
        // Once read as `not_connected`, which hid a corrupted or foreign row.
        assert!("connnected".parse::<ConnectionStatus>().is_err());
        assert!("".parse::<ConnectionStatus>().is_err());
    }

    #[test]
    fn the_transition_table_keeps_working_and_disconnected_grants() {
        use ConnectionStatus as S;
        assert_eq!(S::Connected.on(S::PendingConsent), Transition::Stay);
        assert_eq!(S::NeedsReauth.on(S::PendingConsent), Transition::Stay);
        assert_eq!(S::Revoked.on(S::Error), Transition::Stay);
        assert_eq!(S::Revoked.on(S::PendingConsent), Transition::To(S::PendingConsent));
        assert_eq!(S::Revoked.on(S::Connected), Transition::To(S::Connected));
        for from in S::ALL {
            assert_eq!(from.on(S::Connected), Transition::To(S::Connected), "{from:?}");
            assert_eq!(from.on(S::Revoked), Transition::To(S::Revoked), "{from:?}");
        }
    }

    #[test]
    fn a_stored_error_without_its_time_takes_the_rows() {
        let written = crate::clock::now();
        let e = LastError::from_stored(r#"{"code":"token_exchange_failed","message":"no"}"#, written).ok();
        assert_eq!(e.map(|e| e.at), Some(written));
    }

    #[test]
    fn an_expiry_from_any_expires_in_is_bounded() {
        let now = crate::clock::now();
        assert!(expiry(now, u64::MAX) <= now + chrono::TimeDelta::days(3660 + 1));
    }
}
