//! Sessions started before the user connected. The upstream cannot be initialized without the
//! user's token, so the gateway answers that `initialize` itself and hands out a session id of
//! its own (`sbs_…`: the client's initialize parameters, sealed to the grant). Once the user has
//! connected, the first request on that session initializes the upstream with those parameters
//! and maps the gateway's id onto the upstream's — lazily, in each process that sees the session,
//! and again whenever the upstream forgets its session. Sessions the upstream started are passed
//! through as they are.
//!
//! A gateway session lives a day at most (its id says when it began) and ends with the client's
//! DELETE: the end is kept in every process (announced as a change, through Redis across
//! processes), so the id is then not found anywhere, as the spec has it, until it would have
//! expired anyway.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_domain::connection::GrantKey;
use switchboard_domain::crypto::Envelope;

use crate::cache::Ttl;

const PREFIX: &str = "sbs_";

/// What a gateway session id holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The client's `initialize` params.
    pub(crate) init: Value,
    /// Whether the client declared URL-mode elicitation.
    pub(crate) url: bool,
    /// The grant it belongs to (a session id replayed on another grant opens as nothing).
    user: String,
    agent: uuid::Uuid,
    server: uuid::Uuid,
    /// When it began (Unix seconds).
    at: i64,
}

/// How far behind another process's clock this one's may be, in seconds.
const CLOCK_SKEW: i64 = 300;

/// How long a gateway session lives.
pub(crate) const LIFE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub(crate) struct Sessions {
    /// Gateway session id → upstream session id.
    pub(crate) upstream: Ttl<String, String>,
    /// Upstream session id → whether its client declared URL-mode elicitation.
    pub(crate) url_capable: Ttl<String, bool>,
    /// Gateway sessions ended by their client (by [`digest`]).
    pub(crate) ended: Ttl<String, ()>,
    /// An agent session's gateway session with each of its servers: (agent session digest,
    /// server id) → `sbs_…` (`agent.rs`).
    pub(crate) per_server: Ttl<(String, uuid::Uuid), String>,
    /// The last list of each kind a server gave through an agent endpoint (prefixed), shown for
    /// users who have not connected it yet.
    pub(crate) known_lists: Ttl<KnownList, std::sync::Arc<Vec<Value>>>,
}

/// (tenant, agent, server, list method).
pub(crate) type KnownList =
    (switchboard_domain::TenantId, switchboard_domain::AgentId, switchboard_domain::McpServerId, String);

impl Default for Sessions {
    fn default() -> Self {
        let day = std::time::Duration::from_secs(24 * 3600);
        Self {
            upstream: Ttl::new(day, 100_000),
            url_capable: Ttl::new(day, 100_000),
            ended: Ttl::new(LIFE, 1_000_000),
            per_server: Ttl::new(day, 100_000),
            known_lists: Ttl::new(day, 10_000),
        }
    }
}

/// The elicitation id of a gateway session's connect request: derived from the session id, so
/// every process names it the same in the `-32042` answer and in the completion notification.
#[must_use]
pub(crate) fn elicitation_id(session: &str) -> uuid::Uuid {
    let digest = switchboard_domain::crypto::sha256(session.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[must_use]
pub(crate) fn is_gateway_session(id: &str) -> bool {
    id.starts_with(PREFIX)
}

/// What names an ended session in announcements and in [`Sessions::ended`]: a digest, so the
/// id itself travels nowhere.
#[must_use]
pub(crate) fn digest(id: &str) -> String {
    switchboard_domain::crypto::hex_digest(id.as_bytes())
}

pub(crate) fn seal(envelope: &Envelope, key: &GrantKey, init: Value, url: bool) -> Option<String> {
    let pending = Pending {
        init,
        url,
        user: key.user_id.clone(),
        agent: key.agent_id.0,
        server: key.mcp_server_id.0,
        at: switchboard_domain::clock::now().timestamp(),
    };
    crate::connect::seal_json(envelope, key.tenant_id, "session", PREFIX, &pending)
}

impl Sessions {
    /// The gateway session `id` of `key`'s grant, unless it was never one, expired or ended.
    pub(crate) fn open(&self, envelope: &Envelope, key: &GrantKey, id: &str) -> Option<Pending> {
        let (tenant, p): (_, Pending) = crate::connect::open_json(envelope, "session", PREFIX, id)?;
        let ours = tenant == key.tenant_id
            && p.user == key.user_id
            && p.agent == key.agent_id.0
            && p.server == key.mcp_server_id.0;
        (ours && self.live(id, p.at)).then_some(p)
    }

    /// Whether session `id`, begun at `at` (Unix seconds), is within its life and not ended —
    /// a gateway session's or an agent session's (`agent.rs`).
    pub(crate) fn live(&self, id: &str, at: i64) -> bool {
        let age = switchboard_domain::clock::now().timestamp().saturating_sub(at);
        // Another process's clock may run a little ahead of this one's.
        let within = (-CLOCK_SKEW..i64::try_from(LIFE.as_secs()).unwrap_or(i64::MAX)).contains(&age);
        within && self.ended.get(&digest(id)).is_none()
    }

    /// Ends gateway session `id` in this process (the caller announces it to the others).
    pub(crate) fn end(&self, id: &str) {
        self.upstream.remove(&id.to_owned());
        self.ended.put(digest(id), ());
    }
}
