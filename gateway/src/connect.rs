//! "Connect first": what a client gets when its user has no usable grant for an
//! authorization-code server, in the form its protocol version defines, and the connect
//! requests those answers point at.
//!
//! The URL in every answer is Switchboard's own connect page, `{public_url}/connect/{request}`,
//! never the provider's authorization endpoint: the request is sealed (AES-GCM under the master
//! key, bound to the tenant) and carries no secret and nothing readable. The MCP spec's
//! phishing rule — the user who opens the URL must be the user who triggered it — is met by
//! confirmation: the page itself starts nothing; the tenant's app, where the user is signed
//! in, confirms the request with that user's session ticket
//! (`POST /v1/runtime/connect-requests/{request}/confirm`), which answers only when the
//! ticket's user is the request's user, and gets the consent URL to send the browser to. A link
//! forwarded to someone else is useless to them: their app's ticket names another user.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_domain::connection::GrantKey;
use switchboard_domain::crypto::{Envelope, SealContext};
use switchboard_domain::{AgentId, McpServerId, TenantId};

use crate::rpc::{self, Era, code};

/// How long a connect request stays open.
pub const REQUEST_LIFE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
const PREFIX: &str = "sbx_";
const STATE_PREFIX: &str = "sbr_";

/// What a connect request asks: this user, through this agent, connects this server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// The elicitation id the client saw.
    pub id: uuid::Uuid,
    pub tenant: TenantId,
    pub user: String,
    pub agent: AgentId,
    pub server: McpServerId,
    /// Unix seconds.
    pub expires_at: i64,
}

impl ConnectRequest {
    #[must_use]
    pub fn for_grant(key: &GrantKey) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            tenant: key.tenant_id,
            user: key.user_id.clone(),
            agent: key.agent_id,
            server: key.mcp_server_id,
            expires_at: (switchboard_domain::clock::now() + REQUEST_LIFE).timestamp(),
        }
    }

    #[must_use]
    pub fn key(&self) -> GrantKey {
        GrantKey {
            tenant_id: self.tenant,
            user_id: self.user.clone(),
            agent_id: self.agent,
            mcp_server_id: self.server,
        }
    }
}

fn context(tenant: TenantId, column: &str) -> SealContext<'_> {
    SealContext { tenant, table: "gateway", column, row: uuid::Uuid::nil() }
}

pub(crate) fn seal_json<T: Serialize>(
    envelope: &Envelope,
    tenant: TenantId,
    column: &str,
    prefix: &str,
    v: &T,
) -> Option<String> {
    let plain = serde_json::to_vec(v).ok()?;
    let sealed = envelope.seal(&context(tenant, column), &plain).ok()?;
    Some(format!("{prefix}{}_{}", tenant.0.simple(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)))
}

pub(crate) fn open_json<T: for<'de> Deserialize<'de>>(
    envelope: &Envelope,
    column: &str,
    prefix: &str,
    s: &str,
) -> Option<(TenantId, T)> {
    let rest = s.strip_prefix(prefix)?;
    let (tenant, b64) = rest.split_once('_')?;
    let tenant = TenantId(uuid::Uuid::try_parse(tenant).ok()?);
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok()?;
    let plain = envelope.open(&context(tenant, column), &sealed).ok()?;
    Some((tenant, serde_json::from_slice(&plain).ok()?))
}

/// The request's token, as it appears in the connect URL.
#[must_use]
pub fn seal(envelope: &Envelope, request: &ConnectRequest) -> Option<String> {
    seal_json(envelope, request.tenant, "connect_request", PREFIX, request)
}

/// Why a connect request does not open.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("this connect link is not valid")]
    Invalid,
    #[error("this connect link has expired; ask your agent again")]
    Expired,
}

/// Opens a connect request's token; a tampered, foreign or expired one is refused.
pub fn open(envelope: &Envelope, token: &str) -> Result<ConnectRequest, RequestError> {
    let (tenant, request): (TenantId, ConnectRequest) =
        open_json(envelope, "connect_request", PREFIX, token).ok_or(RequestError::Invalid)?;
    if request.tenant != tenant {
        return Err(RequestError::Invalid);
    }
    if request.expires_at < switchboard_domain::clock::now().timestamp() {
        return Err(RequestError::Expired);
    }
    Ok(request)
}

/// The integrity-protected `requestState` of a 2026-07-28 `input_required` answer: which grant
/// it is about and until when.
#[derive(Serialize, Deserialize)]
struct State {
    user: String,
    agent: AgentId,
    server: McpServerId,
    expires_at: i64,
}

/// Whether `state` is a `requestState` this gateway issued for `key` (and still valid).
#[must_use]
pub fn is_our_state(envelope: &Envelope, key: &GrantKey, state: &str) -> bool {
    open_json::<State>(envelope, "request_state", STATE_PREFIX, state).is_some_and(|(t, s)| {
        t == key.tenant_id
            && s.user == key.user_id
            && s.agent == key.agent_id
            && s.server == key.mcp_server_id
            && s.expires_at >= switchboard_domain::clock::now().timestamp()
    })
}

/// Whether `state` looks like one of the gateway's `requestState`s (to be kept from the upstream).
#[must_use]
pub fn looks_like_our_state(state: &str) -> bool {
    state.starts_with(STATE_PREFIX)
}

/// The answer to a request of a user who must connect first.
pub struct Answer {
    /// HTTP status (200 for JSON-RPC answers; 400 for 2026-07-28's capability error).
    pub status: u16,
    pub body: Value,
}

/// Builds the connect-first answer to `message` for a client of `era` that does (or does not)
/// support URL elicitation.
#[must_use]
pub fn answer(
    envelope: &Envelope,
    message: &rpc::Message,
    era: Era,
    url_capable: bool,
    request: &ConnectRequest,
    url: &str,
    server_name: &str,
) -> Answer {
    let id = message.id.as_ref();
    let text = format!("Connect {server_name} to continue: open {url}");
    let elicit = format!("Authorization is required to use {server_name}.");
    let method = message.method();
    let retriable = matches!(method, "tools/call" | "prompts/get" | "resources/read");
    match (era, url_capable) {
        (Era::Legacy, true) => Answer {
            status: 200,
            body: rpc::error(
                id,
                code::URL_ELICITATION_REQUIRED,
                "This request requires more information.",
                Some(json!({"elicitations": [{
                    "mode": "url",
                    "elicitationId": request.id.to_string(),
                    "url": url,
                    "message": elicit,
                }]})),
            ),
        },
        (Era::Modern, true) if retriable => {
            let state = State {
                user: request.user.clone(),
                agent: request.agent,
                server: request.server,
                expires_at: request.expires_at,
            };
            let request_state = seal_json(envelope, request.tenant, "request_state", STATE_PREFIX, &state);
            Answer {
                status: 200,
                body: rpc::result(
                    id,
                    json!({
                        "resultType": "input_required",
                        "inputRequests": {"connect": {"method": "elicitation/create", "params": {"mode": "url", "url": url, "message": elicit}}},
                        "requestState": request_state,
                    }),
                ),
            }
        }
        (Era::Modern, false) if retriable => Answer {
            status: 400,
            body: rpc::error(
                id,
                -32021,
                &text,
                Some(json!({"requiredCapabilities": {"elicitation": {"url": {}}}, "url": url})),
            ),
        },
        // A tool call of a client that cannot open the URL itself: a tool error the model reads.
        (Era::Legacy, false) if method == "tools/call" => Answer {
            status: 200,
            body: rpc::result(id, json!({"content": [{"type": "text", "text": text}], "isError": true})),
        },
        _ => Answer { status: 200, body: rpc::error(id, code::CONNECT_REQUIRED, &text, Some(json!({"url": url}))) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GrantKey {
        GrantKey {
            tenant_id: TenantId::new(),
            user_id: "alice@example.com".into(),
            agent_id: AgentId::new(),
            mcp_server_id: McpServerId::new(),
        }
    }

    #[test]
    fn connect_requests_open_only_as_sealed_and_in_time() {
        let envelope = Envelope::from_bytes(&[3; 32]).expect("key");
        let request = ConnectRequest::for_grant(&key());
        let token = seal(&envelope, &request).expect("seal");
        assert!(!token.contains("alice"), "no user id in the URL");
        assert_eq!(open(&envelope, &token), Ok(request.clone()));
        let other = Envelope::from_bytes(&[4; 32]).expect("key");
        assert_eq!(open(&other, &token), Err(RequestError::Invalid));
        let mut tampered = token.clone();
        tampered.push('A');
        assert_eq!(open(&envelope, &tampered), Err(RequestError::Invalid));
        let old = ConnectRequest { expires_at: 0, ..request };
        assert_eq!(open(&envelope, &seal(&envelope, &old).expect("seal")), Err(RequestError::Expired));
    }

    #[test]
    fn each_era_gets_its_own_answer() {
        let envelope = Envelope::from_bytes(&[3; 32]).expect("key");
        let k = key();
        let request = ConnectRequest::for_grant(&k);
        let call = rpc::Message::parse(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo"}}"#)
            .expect("parse");
        let a = answer(&envelope, &call, Era::Legacy, true, &request, "https://sb/connect/x", "Linear");
        assert_eq!(a.body["error"]["code"], -32042);
        assert_eq!(a.body["error"]["data"]["elicitations"][0]["mode"], "url");
        assert_eq!(a.body["error"]["data"]["elicitations"][0]["elicitationId"], request.id.to_string());
        let a = answer(&envelope, &call, Era::Legacy, false, &request, "https://sb/connect/x", "Linear");
        assert_eq!(a.body["result"]["isError"], true);
        assert!(a.body["result"]["content"][0]["text"].as_str().is_some_and(|t| t.contains("https://sb/connect/x")));
        let a = answer(&envelope, &call, Era::Modern, true, &request, "https://sb/connect/x", "Linear");
        assert_eq!(a.body["result"]["resultType"], "input_required");
        let state = a.body["result"]["requestState"].as_str().expect("state");
        assert!(is_our_state(&envelope, &k, state));
        assert!(!is_our_state(&envelope, &GrantKey { user_id: "mallory".into(), ..k.clone() }, state));
        let a = answer(&envelope, &call, Era::Modern, false, &request, "https://sb/connect/x", "Linear");
        assert_eq!((a.status, a.body["error"]["code"].as_i64()), (400, Some(-32021)));
    }
}
