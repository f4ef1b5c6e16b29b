//! Sessions started before the user connected. The upstream cannot be initialized without the
//! user's token, so the gateway answers that `initialize` itself and hands out a session id of
//! its own (`sbs_…`: the client's initialize parameters, sealed to the grant). Once the user has
//! connected, the first request on that session initializes the upstream with those parameters
//! and maps the gateway's id onto the upstream's — lazily, in each process that sees the session,
//! and again whenever the upstream forgets its session. Sessions the upstream started are passed
//! through as they are.

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
}

pub(crate) struct Sessions {
    /// Gateway session id → upstream session id.
    pub(crate) upstream: Ttl<String, String>,
    /// Upstream session id → whether its client declared URL-mode elicitation.
    pub(crate) url_capable: Ttl<String, bool>,
}

impl Default for Sessions {
    fn default() -> Self {
        let day = std::time::Duration::from_secs(24 * 3600);
        Self { upstream: Ttl::new(day, 100_000), url_capable: Ttl::new(day, 100_000) }
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

pub(crate) fn seal(envelope: &Envelope, key: &GrantKey, init: Value, url: bool) -> Option<String> {
    let pending = Pending { init, url, user: key.user_id.clone(), agent: key.agent_id.0, server: key.mcp_server_id.0 };
    crate::connect::seal_json(envelope, key.tenant_id, "session", PREFIX, &pending)
}

pub(crate) fn open(envelope: &Envelope, key: &GrantKey, id: &str) -> Option<Pending> {
    let (tenant, p): (_, Pending) = crate::connect::open_json(envelope, "session", PREFIX, id)?;
    (tenant == key.tenant_id && p.user == key.user_id && p.agent == key.agent_id.0 && p.server == key.mcp_server_id.0)
        .then_some(p)
}
