//! A minimal MCP Streamable HTTP client: `initialize`, `notifications/initialized`, `tools/list`.
//! Enough to verify that a configuration works; the gateway issue grows it into a proxy.
//!
//! Responses may be plain JSON or a `text/event-stream` whose `data:` lines carry JSON-RPC
//! messages; both are read. The bearer token, when there is one, goes only in the
//! `Authorization` header and never into a step, a log line or an error.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use url::Url;

use crate::http::{Fetched, Fetcher, headers, ms_since};
use crate::result::Step;

/// The protocol version discovery speaks in its probe.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

pub use crate::result::Verification;

/// A failed call: words, and the scopes a 403 challenge asked for.
struct Failure {
    message: String,
    status: Option<u16>,
    required_scopes: Vec<String>,
}

impl Verification {
    fn fail(&mut self, f: Failure) {
        self.error = Some(f.message);
        self.status = f.status;
        self.required_scopes = f.required_scopes;
    }
}

/// Finds the JSON-RPC response with `id` in a JSON or SSE body.
pub(crate) fn rpc_response(f: &Fetched, id: u64) -> Option<Value> {
    let is_sse =
        f.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"));
    let matches = |v: &Value| v.get("id").and_then(Value::as_u64) == Some(id);
    if is_sse {
        let text = String::from_utf8_lossy(&f.body);
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(matches)
    } else {
        serde_json::from_slice::<Value>(&f.body).ok().filter(matches)
    }
}

fn failure(status: u16) -> String {
    match status {
        401 => "the server refused the credentials (401)".into(),
        403 => "the credentials lack a required scope (403)".into(),
        404 => "no MCP endpoint at this URL (404)".into(),
        s => format!("unexpected status {s}"),
    }
}

/// The request headers of a verification call.
pub(crate) fn request_headers(
    extra: &BTreeMap<String, String>,
    bearer: Option<&str>,
    session: Option<&str>,
    version: Option<&str>,
) -> reqwest::header::HeaderMap {
    use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
    let mut h = headers(&[("accept", "application/json, text/event-stream"), ("content-type", "application/json")]);
    for (k, val) in extra {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(val)) {
            h.insert(name, value);
        }
    }
    if let Some(t) = bearer
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        value.set_sensitive(true);
        h.insert(AUTHORIZATION, value);
    }
    if let Some(s) = session
        && let Ok(value) = HeaderValue::from_str(s)
    {
        h.insert("mcp-session-id", value);
    }
    // After initialize, every request names the negotiated version (stateless servers included).
    if (session.is_some() || version.is_some())
        && let Ok(value) = HeaderValue::from_str(version.unwrap_or(PROTOCOL_VERSION))
    {
        h.insert("mcp-protocol-version", value);
    }
    h
}

/// One POST of a JSON-RPC message, recorded as a step; a non-2xx answer is an error in words.
async fn send(
    fetcher: &Fetcher,
    endpoint: &Url,
    h: reqwest::header::HeaderMap,
    body: &Value,
    learned: &str,
    steps: &mut Vec<Step>,
) -> Result<Fetched, Failure> {
    let start = Instant::now();
    let res = fetcher.post(endpoint, h, body.to_string().into_bytes()).await;
    let mut step = Step {
        method: "POST".into(),
        url: endpoint.to_string(),
        status: None,
        ms: ms_since(start),
        error: None,
        learned: learned.into(),
    };
    let out = match res {
        Ok(f) => {
            step.status = Some(f.status.as_u16());
            if f.status.is_success() {
                Ok(f)
            } else {
                // RFC 6750 §3.1 / MCP step-up: a 403 insufficient_scope names the scopes it wants.
                let header = f
                    .headers
                    .get_all("www-authenticate")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(", ");
                let challenge = crate::www_authenticate::bearer(&header).ok().flatten();
                // What the challenge said tells a wrong audience from a revoked token. Only its
                // RFC 6750 `error` code is kept (letters and `_`), and whether its description
                // speaks of the audience: the description itself may echo what was sent, a
                // credential included, and this text is stored and shown.
                let said = challenge.as_ref().and_then(|c| {
                    let code: String = c
                        .error
                        .as_deref()
                        .unwrap_or("")
                        .chars()
                        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                        .take(40)
                        .collect();
                    let audience =
                        c.error_description.as_deref().is_some_and(|d| d.to_ascii_lowercase().contains("audience"));
                    match (code.is_empty(), audience) {
                        (true, false) => None,
                        (true, true) => Some("the token's audience was refused".to_owned()),
                        (false, false) => Some(code),
                        (false, true) => Some(format!("{code}: the token's audience was refused")),
                    }
                });
                let required_scopes = match challenge {
                    Some(c) if f.status.as_u16() == 403 && c.error.as_deref() == Some("insufficient_scope") => {
                        c.scope.map(|s| s.split_ascii_whitespace().map(str::to_owned).collect()).unwrap_or_default()
                    }
                    _ => Vec::new(),
                };
                let message = match said {
                    Some(said) => format!("{} — {said}", failure(f.status.as_u16())),
                    None => failure(f.status.as_u16()),
                };
                Err(Failure { message, status: Some(f.status.as_u16()), required_scopes })
            }
        }
        Err(e) => {
            step.error = Some(e.to_string());
            Err(Failure {
                message: format!("the MCP endpoint could not be reached ({e})"),
                status: None,
                required_scopes: Vec::new(),
            })
        }
    };
    steps.push(step);
    out
}

/// Runs `initialize` and `tools/list` against `endpoint` with `bearer` (if any) and the server's
/// extra headers. Every request is appended to `steps`.
pub async fn verify(
    fetcher: &Fetcher,
    endpoint: &Url,
    extra: &BTreeMap<String, String>,
    bearer: Option<&str>,
    steps: &mut Vec<Step>,
) -> Verification {
    let mut v = Verification::default();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}}});
    let f = match send(
        fetcher,
        endpoint,
        request_headers(extra, bearer, None, None),
        &init,
        "verification: initialize",
        steps,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            v.fail(e);
            return v;
        }
    };
    let Some(result) = rpc_response(&f, 1).and_then(|r| r.get("result").cloned()) else {
        v.error = Some("the initialize response is not a JSON-RPC result".into());
        return v;
    };
    v.protocol_version = result.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
    v.server_name = result.pointer("/serverInfo/name").and_then(Value::as_str).map(str::to_owned);
    let session = f.headers.get("mcp-session-id").and_then(|s| s.to_str().ok()).map(str::to_owned);
    let version = v.protocol_version.clone();
    let h = || request_headers(extra, bearer, session.as_deref(), version.as_deref());
    let _ = send(
        fetcher,
        endpoint,
        h(),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        "verification: initialized",
        steps,
    )
    .await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let f = match send(fetcher, endpoint, h(), &list, "verification: tools/list", steps).await {
        Ok(f) => f,
        Err(e) => {
            v.fail(e);
            return v;
        }
    };
    match rpc_response(&f, 2) {
        Some(r) if r.get("result").is_some() => {
            v.tools = r
                .pointer("/result/tools")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(|t| t.get("name")?.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            v.ok = true;
            if let Some(last) = steps.last_mut() {
                last.learned = format!("verification: tools/list returned {} tools", v.tools.len());
            }
        }
        Some(r) => {
            let msg: String = r
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            v.error = Some(format!("tools/list failed: {msg}"));
        }
        None => v.error = Some("the tools/list response is not JSON-RPC".into()),
    }
    v
}

/// A client-credentials token, with its lifetime when the server said and the client
/// authentication method that obtained it.
#[derive(Clone)]
pub struct ClientCredentialsToken {
    pub access_token: String,
    pub expires_in: Option<u64>,
    pub method: crate::oauth::AuthMethod,
}

/// A client-credentials token request (RFC 6749 §4.4) with the `resource` (RFC 8707), trying the
/// provider's other client authentication method once when the first is refused
/// (`invalid_client`). Errors are reduced to the RFC 6749 error code.
pub async fn client_credentials_token(
    fetcher: &Fetcher,
    token_url: &Url,
    auth: &crate::oauth::ClientAuth<'_>,
    advertised: &[String],
    scopes: &[String],
    resource: Option<&str>,
    steps: &mut Vec<Step>,
) -> Result<ClientCredentialsToken, String> {
    let out = crate::oauth::client_credentials(fetcher, token_url, auth, advertised, scopes, resource, steps).await;
    if let Some(step) = steps.last_mut() {
        step.learned = match &out {
            Ok(t) => format!("verification: client credentials accepted ({})", t.client_auth.as_str()),
            Err(e) => format!("verification: {}", cc_message(e)),
        };
    }
    out.map(|t| ClientCredentialsToken {
        access_token: t.access_token,
        expires_in: t.expires_in,
        method: t.client_auth,
    })
    .map_err(|e| cc_message(&e))
}

fn cc_message(e: &crate::oauth::TokenError) -> String {
    match e {
        crate::oauth::TokenError::InvalidGrant => {
            "the token endpoint refused the client credentials (invalid_grant)".into()
        }
        crate::oauth::TokenError::Refused(code) => {
            format!("the token endpoint refused the client credentials ({code})")
        }
        crate::oauth::TokenError::Transient { message, .. } => message.clone(),
    }
}
