//! Connecting a user's agent to a server: the start of the authorization-code flow
//! ([`connect`](Consent::connect), in `connect.rs`), its end behind the consent callback
//! ([`complete`](Consent::complete), in `complete.rs`), and the live check of a grant upstream
//! ([`check`](Consent::check), in `check.rs`, with its client-credentials token cache in
//! `cc_cache.rs`). Servers that need no user consent connect at once. The flow row holds
//! everything the callback needs, so the callback does no discovery.

mod cc_cache;
mod check;
mod complete;
mod connect;
mod credential;

pub use credential::{Missing, Source, UpstreamCredential};

use std::sync::Arc;

use chrono::{Duration, Utc};
use switchboard_discovery::Discoverer;
use switchboard_domain::DomainError;
use switchboard_domain::store::Store;

/// How long a consent flow may take.
pub const FLOW_TTL: Duration = Duration::minutes(10);

#[derive(Debug)]
pub enum ConnectOutcome {
    Connected,
    PendingConsent { auth_url: String, expires_at: chrono::DateTime<Utc> },
}

/// What the consent page says.
#[derive(Debug)]
pub struct ConsentOutcome {
    pub connected: bool,
    /// The grant the consent was for, once its flow was found.
    pub key: Option<switchboard_domain::connection::GrantKey>,
    pub server_name: Option<String>,
    pub agent_name: Option<String>,
    /// In plain words, for the end user.
    pub message: String,
    pub return_url: Option<String>,
    /// No consent in progress has this state: expired, already used, or never started here.
    pub unknown: bool,
}

impl ConsentOutcome {
    /// A consent that did not complete, with what to tell the user.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            connected: false,
            key: None,
            server_name: None,
            agent_name: None,
            message: message.into(),
            return_url: None,
            unknown: false,
        }
    }
}

pub struct Consent {
    store: Store,
    discoverer: Arc<Discoverer>,
    redirect_uri: String,
    /// Client-credentials tokens by server, reused until shortly before they expire.
    cc_tokens: cc_cache::CcCache,
}

impl std::fmt::Debug for Consent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent").field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

fn not_ready(message: String) -> DomainError {
    DomainError::Conflict { code: switchboard_domain::ErrorCode::ServerNotReady, message }
}

impl Consent {
    #[must_use]
    pub fn new(store: Store, discoverer: Arc<Discoverer>, redirect_uri: String) -> Self {
        Self { store, discoverer, redirect_uri, cc_tokens: cc_cache::CcCache::default() }
    }
}

/// The outcome of `check`: what the upstream server answered with the stored credentials.
#[derive(Debug)]
pub struct CheckOutcome {
    pub verification: switchboard_discovery::mcp::Verification,
    pub latency_ms: u64,
    /// Why the check could not even start (not connected, no token), in words.
    pub precondition: Option<String>,
}
