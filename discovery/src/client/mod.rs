//! The engine of `switchboard client`: a command-line MCP client that authorizes itself the way
//! the MCP spec asks a client to, built from the same pieces as the server flow (discovery,
//! registration, PKCE, the RFC 9207 check, the code exchange, the Streamable HTTP calls).
//!
//! It runs `initialize`, `notifications/initialized`, `tools/list` and optionally one
//! `tools/call`, and reacts to what the server says on *any* of them:
//!
//! - `401`: discover from that response's challenge (after a token was refused, with a cold
//!   metadata cache — the server may have moved to another authorization server), obtain a
//!   token, retry the request;
//! - `403 insufficient_scope`: re-authorize for the union of the scopes requested so far and the
//!   challenged ones (step-up), retry;
//! - at most [`Options::max_authorizations`] authorizations in all, so a server that keeps
//!   refusing ends the run instead of looping.
//!
//! Clients are kept per authorization-server issuer: credentials obtained from one issuer are
//! never presented to another. The authorization step itself is pluggable ([`Authorizer`]):
//! [`headless`] requests the authorization URL without following the redirect and reads the
//! answer from `Location` (authorization servers that approve without a login page, such as test
//! servers); the binary's interactive mode prints the URL and waits on a loopback port.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use url::Url;

mod authorize;

pub use authorize::headless;

use crate::http::{Fetched, Fetcher, ms_since};
use crate::result::{DiscoveryResult, Step};
use crate::{Discoverer, mcp, www_authenticate};

/// How the client gets its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Authorization code with PKCE (a user approves in a browser, or a test server auto-approves).
    AuthorizationCode,
    /// Client credentials (machine to machine), with the pre-registered client.
    ClientCredentials,
}

/// Client credentials obtained outside the flow (the provider's console, a test harness).
#[derive(Clone)]
pub struct PreRegistered {
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for PreRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreRegistered").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// Runs the authorization step: given the authorization URL, returns the URL the authorization
/// server redirected back to (carrying `code`, `state`, maybe `iss` or `error`).
pub type Authorizer = Arc<dyn Fn(Url) -> BoxFuture<'static, Result<Url, String>> + Send + Sync>;

/// What to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub endpoint: Url,
    pub grant: Grant,
    pub pre_registered: Option<PreRegistered>,
    /// The `client_id` URL of a Client ID Metadata Document this client is known by; used when the
    /// authorization server supports CIMD.
    pub client_metadata_url: Option<String>,
    pub redirect_uri: String,
    pub client_name: String,
    /// Scopes to request instead of the spec's selection (challenge, then `scopes_supported`).
    pub scopes: Option<Vec<String>>,
    /// A tool to call after `tools/list`, with its arguments.
    pub call: Option<(String, Value)>,
    /// Authorizations allowed in one run, the first included.
    pub max_authorizations: usize,
    /// The MCP protocol version to speak: up to `2025-11-25`, a session opened by `initialize`;
    /// from `2026-07-28`, stateless requests that each carry the version (no `initialize`).
    pub protocol_version: String,
}

/// The first protocol version without `initialize`: each request names its version in the
/// `MCP-Protocol-Version` header and in `params._meta`.
pub const STATELESS_PROTOCOL: &str = "2026-07-28";

/// What a run achieved (also on failure: how far it got).
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub server_name: Option<String>,
    pub protocol_version: Option<String>,
    pub tools: Vec<String>,
    pub call_result: Option<Value>,
    pub authorizations: usize,
    /// The issuer of the last authorization server used.
    pub issuer: Option<String>,
    /// The scopes of the last token request.
    pub scopes: Vec<String>,
    pub client_registration: Option<String>,
    /// Every HTTP request made, in order.
    pub steps: Vec<Step>,
    /// Why the run stopped, when it failed.
    pub error: Option<String>,
}

/// A client registered (or configured) at one authorization server.
#[derive(Clone)]
struct Client {
    id: String,
    secret: Option<String>,
    method: crate::oauth::AuthMethod,
}

/// A request the server refused in a way the client can act on.
enum Refusal {
    Unauthorized { status: u16, www_authenticate: String },
    InsufficientScope { www_authenticate: String, scopes: Vec<String> },
}

enum CallError {
    Refused(Refusal),
    Fatal(String),
}

/// The client. One per run.
pub struct McpClient {
    opts: Options,
    fetcher: Fetcher,
    discoverer: Discoverer,
    authorize: Authorizer,
    progress: Box<dyn Fn(&str) + Send + Sync>,
    token: Option<String>,
    discovery: Option<DiscoveryResult>,
    clients: HashMap<String, Client>,
    /// The issuer pre-registered credentials were first used with: they are never sent to another.
    pre_registered_issuer: Option<String>,
    requested: BTreeSet<String>,
    /// What the server last refused with, for the message when the run gives up.
    last_refusal: String,
    session: Option<String>,
    report: Report,
    next_id: u64,
}

impl McpClient {
    #[must_use]
    pub fn new(
        opts: Options,
        fetcher: Fetcher,
        authorize: Authorizer,
        progress: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        Self {
            opts,
            discoverer: Discoverer::new(fetcher.clone()),
            fetcher,
            authorize,
            progress,
            token: None,
            discovery: None,
            clients: HashMap::new(),
            pre_registered_issuer: None,
            requested: BTreeSet::new(),
            last_refusal: String::new(),
            session: None,
            report: Report::default(),
            next_id: 0,
        }
    }

    /// Runs the whole session. The report says how far it got either way.
    pub async fn run(mut self) -> Result<Report, Report> {
        match self.session_calls().await {
            Ok(()) => Ok(self.report),
            Err(e) => {
                self.report.error = Some(e);
                Err(self.report)
            }
        }
    }

    fn stateless(&self) -> bool {
        self.opts.protocol_version.as_str() >= STATELESS_PROTOCOL
    }

    async fn session_calls(&mut self) -> Result<(), String> {
        if self.stateless() {
            let found = self
                .call("server/discover", Some(json!({})))
                .await?
                .ok_or("the server/discover response is not a result")?;
            self.report.protocol_version = Some(self.opts.protocol_version.clone());
            self.report.server_name = found
                .pointer("/_meta/io.modelcontextprotocol~1serverInfo/name")
                .and_then(Value::as_str)
                .map(str::to_owned);
        } else {
            self.initialize().await?;
        }
        self.list_and_call().await
    }

    async fn initialize(&mut self) -> Result<(), String> {
        let init = self
            .call(
                "initialize",
                Some(json!({"protocolVersion": self.opts.protocol_version, "capabilities": {},
                    "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}})),
            )
            .await?
            .ok_or("the initialize response is not a JSON-RPC result")?;
        self.report.protocol_version = init.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
        self.report.server_name = init.pointer("/serverInfo/name").and_then(Value::as_str).map(str::to_owned);
        (self.progress)(&format!(
            "initialized: {} (protocol {})",
            self.report.server_name.as_deref().unwrap_or("unnamed server"),
            self.report.protocol_version.as_deref().unwrap_or("?")
        ));
        self.call("notifications/initialized", None).await?;
        Ok(())
    }

    async fn list_and_call(&mut self) -> Result<(), String> {
        let list = self.call("tools/list", Some(json!({}))).await?.ok_or("the tools/list response is not a result")?;
        self.report.tools = list
            .get("tools")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(|t| t.get("name")?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        (self.progress)(&format!("tools/list: {} tools", self.report.tools.len()));
        if let Some((name, arguments)) = self.opts.call.clone() {
            let result = self
                .call("tools/call", Some(json!({"name": name, "arguments": arguments})))
                .await?
                .ok_or("the tools/call response is not a result")?;
            (self.progress)(&format!(
                "tools/call {name}: {}",
                if result.get("isError").and_then(Value::as_bool) == Some(true) {
                    "the tool reported an error"
                } else {
                    "ok"
                }
            ));
            self.report.call_result = Some(result);
        }
        Ok(())
    }

    /// One JSON-RPC request (or notification when `params` is None and the method starts with
    /// `notifications/`), authorizing and retrying as the server asks.
    async fn call(&mut self, method: &str, params: Option<Value>) -> Result<Option<Value>, String> {
        let notification = method.starts_with("notifications/");
        let id = if notification {
            None
        } else {
            self.next_id += 1;
            Some(self.next_id)
        };
        let mut message = serde_json::Map::new();
        message.insert("jsonrpc".into(), json!("2.0"));
        message.insert("method".into(), json!(method));
        if let Some(id) = id {
            message.insert("id".into(), json!(id));
        }
        if let Some(mut p) = params {
            if self.stateless()
                && let Some(obj) = p.as_object_mut()
            {
                obj.insert(
                    "_meta".into(),
                    json!({"io.modelcontextprotocol/protocolVersion": self.opts.protocol_version,
                        "io.modelcontextprotocol/clientCapabilities": {}}),
                );
            }
            message.insert("params".into(), p);
        }
        let body = Value::Object(message);
        loop {
            match self.send(method, &body, id).await {
                Ok(v) => return Ok(v),
                Err(CallError::Fatal(e)) => return Err(e),
                Err(CallError::Refused(Refusal::Unauthorized { status, www_authenticate })) => {
                    self.last_refusal = format!("{status} to {method}");
                    (self.progress)(&format!("{method}: {status}, authorizing"));
                    self.authenticate(status, &www_authenticate).await?;
                }
                Err(CallError::Refused(Refusal::InsufficientScope { www_authenticate, scopes })) => {
                    self.last_refusal =
                        format!("403 insufficient_scope to {method}, asking for {:?}", scopes.join(" "));
                    (self.progress)(&format!("{method}: 403 insufficient_scope ({})", scopes.join(" ")));
                    self.step_up(&www_authenticate, scopes).await?;
                }
            }
        }
    }

    async fn send(&mut self, method: &str, body: &Value, id: Option<u64>) -> Result<Option<Value>, CallError> {
        let version = if self.stateless() {
            Some(self.opts.protocol_version.as_str())
        } else {
            self.report.protocol_version.as_deref()
        };
        let h = mcp::request_headers(
            &std::collections::BTreeMap::new(),
            self.token.as_deref(),
            self.session.as_deref(),
            version,
        );
        let start = Instant::now();
        let res = self.fetcher.post(&self.opts.endpoint, h, body.to_string().into_bytes()).await;
        let mut step = Step {
            method: "POST".into(),
            url: self.opts.endpoint.to_string(),
            status: None,
            ms: ms_since(start),
            error: None,
            learned: method.to_owned(),
        };
        let f = match res {
            Ok(f) => f,
            Err(e) => {
                step.error = Some(e.to_string());
                self.report.steps.push(step);
                return Err(CallError::Fatal(format!("{method}: the MCP endpoint could not be reached ({e})")));
            }
        };
        let status = f.status.as_u16();
        step.status = Some(status);
        self.report.steps.push(step);
        if method == "initialize"
            && let Some(s) = f.headers.get("mcp-session-id").and_then(|s| s.to_str().ok())
        {
            self.session = Some(s.to_owned());
        }
        match status {
            200..=299 => Self::result(method, &f, id),
            401 | 403 => {
                let header = www_authenticate_of(&f);
                let challenge = www_authenticate::bearer(&header).ok().flatten();
                match challenge {
                    Some(c) if status == 403 && c.error.as_deref() == Some("insufficient_scope") => {
                        let scopes = c
                            .scope
                            .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
                            .unwrap_or_default();
                        Err(CallError::Refused(Refusal::InsufficientScope { www_authenticate: header, scopes }))
                    }
                    _ if status == 401 => {
                        Err(CallError::Refused(Refusal::Unauthorized { status, www_authenticate: header }))
                    }
                    _ => Err(CallError::Fatal(format!(
                        "{method}: the server refused the request (403) without asking for more scope"
                    ))),
                }
            }
            s => Err(CallError::Fatal(format!("{method}: unexpected status {s}"))),
        }
    }

    fn result(method: &str, f: &Fetched, id: Option<u64>) -> Result<Option<Value>, CallError> {
        let Some(id) = id else { return Ok(None) };
        let Some(response) = mcp::rpc_response(f, id) else {
            return Err(CallError::Fatal(format!("{method}: the response is not JSON-RPC")));
        };
        if let Some(result) = response.get("result") {
            return Ok(Some(result.clone()));
        }
        let msg: String = response
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Err(CallError::Fatal(format!("{method} failed: {msg}")))
    }
}

fn www_authenticate_of(f: &Fetched) -> String {
    f.headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ")
}
