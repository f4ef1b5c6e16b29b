//! The gateway's HTTP handlers: `POST|GET|DELETE /mcp/{tenant}/{agent}/{server}`, the route's
//! protected resource metadata, and the connect page.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};
use switchboard_discovery::FetchError;
use switchboard_worker::consent::{Missing, Source};
use url::Url;

use crate::connect::{self, ConnectRequest};
use crate::filter::{self, Cursors};
use crate::inbound::{Caller, Credential, Refusal};
use crate::rpc::{self, BadMessage, Era, Message, code};
use crate::upstream;
use crate::{Gateway, Inner, sessions};

/// Registers the gateway's routes.
pub fn configure(cfg: &mut web::ServiceConfig, gateway: &Gateway) {
    let limit = gateway.inner.config.max_body_bytes;
    cfg.app_data(web::Data::new(gateway.clone()))
        .service(
            web::resource("/mcp/{tenant}/{agent}/{server}")
                .app_data(web::PayloadConfig::default().limit(limit))
                .route(web::post().to(post))
                .route(web::get().to(get))
                .route(web::delete().to(delete)),
        )
        .service(
            web::resource("/.well-known/oauth-protected-resource/mcp/{tenant}/{agent}/{server}")
                .route(web::get().to(resource_metadata)),
        )
        .service(web::resource("/connect/{request}").route(web::get().to(connect_page)));
}

type Segments = web::Path<(String, String, String)>;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = header(req, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("application/json")
        .body(body.to_string())
}

fn problem(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("application/problem+json").body(
        json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "code": code, "detail": detail})
            .to_string(),
    )
}

impl Inner {
    fn route_url(&self, s: &(String, String, String)) -> String {
        format!("{}/mcp/{}/{}/{}", self.config.public_url, s.0, s.1, s.2)
    }

    fn metadata_url(&self, s: &(String, String, String)) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp/{}/{}/{}", self.config.public_url, s.0, s.1, s.2)
    }

    /// The HTTP answer to a refusal. 401s name the route's resource metadata (RFC 9728).
    fn refusal(&self, s: &(String, String, String), refusal: &Refusal) -> HttpResponse {
        use switchboard_domain::ticket::TicketError as T;
        let challenge = |error: Option<&str>| {
            let mut c = format!("Bearer resource_metadata=\"{}\"", self.metadata_url(s));
            if let Some(e) = error {
                c.push_str(&format!(", error=\"{e}\""));
            }
            c
        };
        let unauthorized = |code: &str, detail: &str, error: Option<&str>| {
            let mut r = problem(StatusCode::UNAUTHORIZED, code, detail);
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&challenge(error)) {
                r.headers_mut().insert(actix_web::http::header::WWW_AUTHENTICATE, v);
            }
            r
        };
        match refusal {
            Refusal::NoCredential => unauthorized(
                "unauthorized",
                "this gateway route needs a session ticket as its bearer token (POST /v1/session-tickets)",
                None,
            ),
            Refusal::ApiKey => unauthorized(
                "wrong_credential",
                "an API key cannot call the gateway: send the end user's session ticket",
                Some("invalid_token"),
            ),
            Refusal::Ticket(T::Expired) => {
                unauthorized("ticket_expired", "the session ticket has expired", Some("invalid_token"))
            }
            Refusal::Ticket(T::Revoked) => {
                unauthorized("ticket_revoked", "the session ticket has been revoked", Some("invalid_token"))
            }
            Refusal::Ticket(T::Internal) => {
                problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the session ticket could not be processed")
            }
            Refusal::Ticket(e) => unauthorized("invalid_ticket", &e.to_string(), Some("invalid_token")),
            Refusal::NotFound(detail) => problem(StatusCode::NOT_FOUND, "not_found", detail),
            Refusal::Scope => problem(
                StatusCode::FORBIDDEN,
                "ticket_scope",
                "the session ticket's scope does not include this agent, server, tool or operation",
            ),
            Refusal::Unavailable => {
                let mut r =
                    problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the gateway cannot reach its database");
                r.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from_static("1"),
                );
                r
            }
            Refusal::Origin => problem(StatusCode::FORBIDDEN, "forbidden", "this Origin or Host is not served here"),
        }
    }

    /// The spec's DNS-rebinding defence: an `Origin`, when present, must be the gateway's own (or
    /// configured); on a loopback public URL the `Host` must be loopback too.
    fn check_origin(&self, req: &HttpRequest) -> Result<(), Refusal> {
        let loopback = self.loopback;
        if let Some(origin) = header(req, "origin")
            && !origin_allowed(self.public.as_ref(), loopback, &self.config.allowed_origins, origin)
        {
            return Err(Refusal::Origin);
        }
        if loopback && let Some(host) = header(req, "host") {
            let name = host
                .rsplit_once(':')
                .map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
            if !is_loopback_host(name.trim_start_matches('[').trim_end_matches(']')) {
                return Err(Refusal::Origin);
            }
        }
        Ok(())
    }

    fn connect_url(&self, request: &ConnectRequest) -> Option<String> {
        connect::seal(self.runtime.store.envelope(), request).map(|t| format!("{}/connect/{t}", self.config.public_url))
    }

    fn cursors<'a>(&'a self, caller: &Caller) -> Cursors<'a> {
        Cursors {
            envelope: self.runtime.store.envelope(),
            context: switchboard_domain::crypto::SealContext {
                tenant: caller.key.tenant_id,
                table: "gateway",
                column: "cursor",
                row: uuid::Uuid::from_u64_pair(
                    caller.key.agent_id.0.as_u64_pair().0 ^ caller.key.mcp_server_id.0.as_u64_pair().0,
                    caller.key.agent_id.0.as_u64_pair().1 ^ caller.key.mcp_server_id.0.as_u64_pair().1,
                ),
            },
        }
    }
}

pub(crate) fn is_loopback_host(h: &str) -> bool {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request's `Origin` may use the gateway: the public URL's own origin, a configured
/// one, or — when the public URL is loopback (a local gateway) — any loopback origin, whatever
/// its port or spelling (`localhost`, `127.0.0.1`, `[::1]`), which is the spec's rule for local
/// servers. A DNS-rebinding page carries its own host name as its origin and is refused.
fn origin_allowed(public: Option<&Url>, loopback: bool, allowed: &[String], origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    let local = || {
        Url::parse(origin)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .is_some_and(|u| u.host_str().is_some_and(is_loopback_host))
    };
    public.is_some_and(|u| u.origin().ascii_serialization() == origin)
        || allowed.iter().any(|o| o.trim_end_matches('/') == origin)
        || (loopback && local())
}

/// `GET /.well-known/oauth-protected-resource/mcp/{tenant}/{agent}/{server}` (RFC 9728 §3.1:
/// the well-known segment inserted before the route's path).
async fn resource_metadata(gw: web::Data<Gateway>, path: Segments) -> HttpResponse {
    let inner = &gw.inner;
    json_response(
        200,
        &json!({
            "resource": inner.route_url(&path),
            "authorization_servers": [],
            "bearer_methods_supported": ["header"],
            "resource_name": "Switchboard MCP gateway",
            "resource_documentation": format!("{}/docs/", inner.config.public_url),
            "switchboard": {"credential": "session_ticket", "mint": format!("{}/v1/session-tickets", inner.config.public_url)},
        }),
    )
}

/// What one request is about, for the ticket and the span.
fn operation(method: &str) -> &'static str {
    match method {
        "tools/call" | "prompts/get" | "resources/read" => "call",
        _ => "list",
    }
}

async fn post(gw: web::Data<Gateway>, req: HttpRequest, path: Segments, body: Bytes) -> HttpResponse {
    let inner = &gw.inner;
    let started = Instant::now();
    let span = tracing::info_span!(
        "gateway",
        tenant = %path.0, agent = %path.1, server = %path.2,
        mcp.method = tracing::field::Empty, mcp.tool = tracing::field::Empty,
        upstream.status = tracing::field::Empty, outcome = tracing::field::Empty, latency_us = tracing::field::Empty,
    );
    let _enter = span.enter();
    let mut observed = Observed { span: &span, route: None, method: "other", outcome: "refused" };
    let response = post_inner(inner, &req, &path, body, &mut observed).await;
    let elapsed = started.elapsed();
    span.record("latency_us", u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    span.record("outcome", observed.outcome);
    if let Some((agent, server)) = observed.route {
        let labels =
            crate::metrics::RequestLabels { agent, server, method: observed.method, outcome: observed.outcome };
        inner.metrics.observe(labels, elapsed.as_secs_f64());
    }
    response
}

/// What the span and the metrics say of a request, filled in as it goes.
struct Observed<'a> {
    span: &'a tracing::Span,
    /// The route's agent and server slugs, once the route is known.
    route: Option<(String, String)>,
    method: &'static str,
    outcome: &'static str,
}

impl Inner {
    /// An audit event of a refusal, written in the background (the answer does not wait on it).
    fn audit_refusal(&self, caller: &Caller, action: &'static str, data: Value) {
        let store = self.runtime.store.clone();
        let key = caller.key.clone();
        tokio::spawn(async move {
            let actor = switchboard_domain::tenant::Actor::User(key.user_id.clone());
            let mut data = data;
            if let Some(map) = data.as_object_mut() {
                map.insert("agent_id".into(), json!(key.agent_id));
                map.insert("channel".into(), json!("gateway"));
            }
            let target = Some(key.mcp_server_id.to_string());
            if let Err(e) = store.tenant(key.tenant_id).record_event(&actor, action, "mcp_server", target, data).await {
                tracing::warn!(error = %switchboard_domain::error::chain(&e), "a gateway refusal was not audited");
            }
        });
    }
}

async fn post_inner(
    inner: &Inner,
    req: &HttpRequest,
    path: &(String, String, String),
    body: Bytes,
    observed: &mut Observed<'_>,
) -> HttpResponse {
    let span = observed.span;
    if let Err(r) = inner.check_origin(req) {
        return inner.refusal(path, &r);
    }
    let caller = match inner.authenticate(bearer(req), (&path.0, &path.1, &path.2)).await {
        Ok(c) => c,
        Err(r) => return inner.refusal(path, &r),
    };
    observed.route = Some((caller.route.agent.slug.clone(), caller.route.server.slug.clone()));
    let message = match Message::parse(&body) {
        Ok(m) => m,
        Err(BadMessage::Batch) => {
            return json_response(
                400,
                &rpc::error(None, code::INVALID_REQUEST, "JSON-RPC batches are not supported", None),
            );
        }
        Err(_) => {
            return json_response(
                400,
                &rpc::error(None, code::PARSE_ERROR, "the body is not one JSON-RPC message", None),
            );
        }
    };
    let method = message.method().to_owned();
    span.record("mcp.method", method.as_str());
    observed.method = crate::metrics::method_label(&method);
    let era = message.era(header(req, "mcp-protocol-version"));
    let target = message.target().map(str::to_owned);
    if method == "tools/call"
        && let Some(t) = &target
    {
        span.record("mcp.tool", t.as_str());
    }
    let tool = (method == "tools/call").then_some(target.as_deref()).flatten();
    if let Err(r) = caller.authorize(operation(&method), tool) {
        observed.outcome = "ticket_scope";
        if matches!(r, Refusal::Scope) {
            inner.audit_refusal(&caller, "gateway.ticket_scope", json!({"method": method, "tool": tool}));
        }
        return inner.refusal(path, &r);
    }
    if let Err(refusal) = filter::check_call(&caller.route.filter, &method, target.as_deref()) {
        observed.outcome = "tool_not_allowed";
        inner.audit_refusal(&caller, "gateway.not_allowed", json!({"method": method, "name": target}));
        let code = if method.starts_with("resources/") && era == Era::Legacy {
            code::RESOURCE_NOT_FOUND
        } else {
            code::INVALID_PARAMS
        };
        return json_response(200, &rpc::error(message.id.as_ref(), code, &refusal, None));
    }
    let session = header(req, "mcp-session-id").map(str::to_owned);
    let credential = match inner.credential(&caller, None).await {
        Ok(Ok(c)) => c,
        Ok(Err(missing)) => {
            observed.outcome = match missing {
                Missing::NotConnected { .. } => "connect_required",
                _ => "upstream_unavailable",
            };
            if matches!(missing, Missing::NotConnected { .. })
                && message.is_request()
                && message.method() != "initialize"
            {
                inner.audit_refusal(&caller, "gateway.connect_required", json!({"method": method}));
            }
            return connect_first(inner, req, &caller, &message, era, session.as_deref(), &missing);
        }
        Err(r) => return inner.refusal(path, &r),
    };
    // Rewrite what the upstream must not see: the gateway's cursor and its own requestState.
    let mut body = body;
    let mut value = None;
    if filter::list_of(&method).is_some()
        && let Some(cursor) = message.cursor()
    {
        let Some(upstream_cursor) = inner.cursors(&caller).open(cursor) else {
            return json_response(200, &rpc::error(message.id.as_ref(), code::INVALID_PARAMS, "Invalid cursor", None));
        };
        let mut v = message.value.clone();
        if let Some(p) = v.get_mut("params").and_then(Value::as_object_mut) {
            p.insert("cursor".into(), Value::String(upstream_cursor));
        }
        value = Some(v);
    }
    if let Some(state) = message.params().and_then(|p| p.get("requestState")).and_then(Value::as_str)
        && connect::looks_like_our_state(state)
    {
        if !connect::is_our_state(inner.runtime.store.envelope(), &caller.key, state) {
            return json_response(
                400,
                &rpc::error(message.id.as_ref(), code::INVALID_PARAMS, "Invalid requestState", None),
            );
        }
        let mut v = value.take().unwrap_or_else(|| message.value.clone());
        if let Some(p) = v.get_mut("params").and_then(Value::as_object_mut) {
            p.remove("requestState");
            p.remove("inputResponses");
        }
        value = Some(v);
    }
    if let Some(v) = value {
        body = Bytes::from(v.to_string());
    }
    // The upstream session: the client's, or the one a gateway session maps onto.
    let upstream_session = match session.as_deref() {
        Some(s) if sessions::is_gateway_session(s) => {
            match inner.upstream_session(req, &caller, &credential, s).await {
                Ok(u) => u,
                Err(response) => return response,
            }
        }
        other => other.map(str::to_owned),
    };
    let rewrite = filter::list_of(&method).is_some() && message.id.is_some();
    let grant = matches!(credential.source, Some(Source::Grant { .. }));
    let mut res = inner
        .send(req, &caller, credential.clone(), reqwest::Method::POST, Some(body.clone()), upstream_session.as_deref())
        .await;
    // A gateway session whose upstream session ended (the upstream restarted, or expired it):
    // the upstream is initialized again with the client's parameters and the request resent,
    // once — the client keeps its session and never sees the 404.
    if let (Ok(r), Some(s)) = (&res, session.as_deref().filter(|s| sessions::is_gateway_session(s)))
        && r.status() == reqwest::StatusCode::NOT_FOUND
        && upstream_session.is_some()
    {
        inner.sessions.upstream.remove(&s.to_owned());
        let again = match inner.upstream_session(req, &caller, &credential, s).await {
            Ok(u) => u,
            Err(response) => return response,
        };
        res = inner.send(req, &caller, credential, reqwest::Method::POST, Some(body), again.as_deref()).await;
    }
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            observed.outcome = "upstream_unavailable";
            return e.into_response(message.id.as_ref());
        }
    };
    span.record("upstream.status", res.status().as_u16());
    // Still refused after the credential was replaced: the upstream's 401 must not reach the
    // client, which would take it for a verdict on its own ticket.
    if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        observed.outcome = "upstream_unauthorized";
        if grant {
            let missing =
                Missing::NotConnected { status: Some(switchboard_domain::connection::ConnectionStatus::NeedsReauth) };
            return connect_first(inner, req, &caller, &message, era, session.as_deref(), &missing);
        }
        let detail = "the MCP server refused the credential Switchboard presented for it (HTTP 401): check the server's auth configuration";
        return json_response(200, &rpc::error(message.id.as_ref(), code::UPSTREAM_UNAVAILABLE, detail, None));
    }
    if method == "initialize"
        && let Some(sid) = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
    {
        let url = rpc::supports_url_elicitation(message.capabilities());
        inner.sessions.url_capable.put(sid.to_owned(), url);
    }
    observed.outcome = if res.status().is_success() { "ok" } else { "upstream_error" };
    let gateway_session = session.as_deref().filter(|s| sessions::is_gateway_session(s));
    if rewrite {
        let cursors = inner.cursors(&caller);
        let id = message.id.clone().unwrap_or(Value::Null);
        respond_rewritten(inner, res, gateway_session, &id, &mut |result| {
            filter::rewrite_list(&method, result, &caller.route.filter, &cursors, era);
        })
        .await
    } else {
        respond_streaming(inner, res, gateway_session, message.id.as_ref()).await
    }
}

/// Upstream failures, as the client sees them: a JSON-RPC error with a clear message.
pub(crate) enum UpstreamError {
    Fetch(FetchError),
    Status(u16),
    Garbage,
}

impl UpstreamError {
    fn into_response(self, id: Option<&Value>) -> HttpResponse {
        let (c, message) = match self {
            Self::Fetch(FetchError::Timeout) => {
                (code::UPSTREAM_UNAVAILABLE, "the MCP server did not answer in time".to_owned())
            }
            Self::Fetch(FetchError::Blocked) => {
                (code::UPSTREAM_UNAVAILABLE, "the MCP server's address is blocked by the network policy".to_owned())
            }
            Self::Fetch(e) => (code::UPSTREAM_UNAVAILABLE, format!("the MCP server could not be reached: {e}")),
            Self::Status(s) => (code::UPSTREAM_UNAVAILABLE, format!("the MCP server answered HTTP {s}")),
            Self::Garbage => (code::UPSTREAM_INVALID, "the MCP server answered something that is not MCP".to_owned()),
        };
        let status = if id.is_some() { 200 } else { 502 };
        json_response(status, &rpc::error(id, c, &message, None))
    }
}

impl Inner {
    /// One upstream call with `credential`; on a 401 the credential is replaced once (a refresh
    /// through the single-flight refresher, or a new client-credentials token) and the call
    /// retried.
    async fn send(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        mut credential: std::sync::Arc<Credential>,
        method: reqwest::Method,
        body: Option<Bytes>,
        session: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url =
            Url::parse(&caller.route.server.config.endpoint).map_err(|_| UpstreamError::Fetch(FetchError::BadUrl))?;
        for attempt in 0..2 {
            let headers = upstream::request_headers(
                req.headers(),
                &caller.route.server.config.headers,
                credential.bearer.as_deref(),
                session,
            );
            let res = self
                .runtime
                .fetcher
                .stream(method.clone(), &url, headers, body.clone(), self.config.upstream_timeout)
                .await
                .map_err(UpstreamError::Fetch)?;
            let refreshable = matches!(credential.source, Some(Source::Grant { .. } | Source::ClientCredentials(_)));
            if res.status() != reqwest::StatusCode::UNAUTHORIZED || attempt == 1 || !refreshable {
                return Ok(res);
            }
            let refused = credential.bearer.clone().unwrap_or_default();
            match self.credential(caller, Some(&refused)).await {
                Ok(Ok(c)) => credential = c,
                _ => return Ok(res),
            }
        }
        Err(UpstreamError::Garbage)
    }

    /// The upstream session behind a gateway session id: mapped already, or initialized now with
    /// the parameters the client initialized the gateway session with.
    async fn upstream_session(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        credential: &std::sync::Arc<Credential>,
        gateway_session: &str,
    ) -> Result<Option<String>, HttpResponse> {
        if let Some(u) = self.sessions.upstream.get(&gateway_session.to_owned()) {
            return Ok(Some(u));
        }
        let Some(pending) = sessions::open(self.runtime.store.envelope(), &caller.key, gateway_session) else {
            return Err(HttpResponse::NotFound().finish());
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": pending.init});
        let res = self
            .send(req, caller, credential.clone(), reqwest::Method::POST, Some(Bytes::from(init.to_string())), None)
            .await
            .map_err(|e| e.into_response(None))?;
        let upstream = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let _ = res.bytes().await;
        if let Some(u) = &upstream {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let _ = self
                .send(
                    req,
                    caller,
                    credential.clone(),
                    reqwest::Method::POST,
                    Some(Bytes::from(note.to_string())),
                    Some(u),
                )
                .await;
            self.sessions.upstream.put(gateway_session.to_owned(), u.clone());
            self.sessions.url_capable.put(u.clone(), pending.url);
        }
        Ok(upstream)
    }
}

fn copy_headers(res: &reqwest::Response, out: &mut actix_web::HttpResponseBuilder, hide_session: bool) {
    for name in upstream::RETURNED {
        if hide_session && *name == "mcp-session-id" {
            continue;
        }
        if let Some(v) = res.headers().get(*name)
            && let Ok(v) = actix_web::http::header::HeaderValue::from_bytes(v.as_bytes())
        {
            out.insert_header((*name, v));
        }
    }
}

fn is_sse(res: &reqwest::Response) -> bool {
    res.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"))
}

/// Streams the upstream's answer through as it arrives (SSE), or passes a JSON answer on after
/// checking it is JSON. Upstream server errors become JSON-RPC errors.
async fn respond_streaming(
    inner: &Inner,
    res: reqwest::Response,
    gateway_session: Option<&str>,
    id: Option<&Value>,
) -> HttpResponse {
    let status = res.status();
    if status.is_server_error() {
        return UpstreamError::Status(status.as_u16()).into_response(id);
    }
    let mut out = HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    copy_headers(&res, &mut out, gateway_session.is_some());
    if is_sse(&res) {
        out.insert_header(("x-accel-buffering", "no"));
        return out
            .streaming(res.bytes_stream().map_err(|_| actix_web::error::ErrorBadGateway("upstream stream ended")));
    }
    let bytes = match read_bounded(inner, res).await {
        Ok(b) => b,
        Err(e) => return e.into_response(id),
    };
    if status.is_success()
        && !bytes.is_empty()
        && id.is_some()
        && serde_json::from_slice::<Value>(&bytes).map_or(true, |v| !v.is_object())
    {
        return UpstreamError::Garbage.into_response(id);
    }
    out.body(bytes)
}

async fn read_bounded(inner: &Inner, res: reqwest::Response) -> Result<Bytes, UpstreamError> {
    let limit = inner.config.max_body_bytes;
    let work = async {
        let mut stream = res.bytes_stream();
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = stream.try_next().await.map_err(|_| UpstreamError::Fetch(FetchError::Other))? {
            if buf.len() + chunk.len() > limit {
                return Err(UpstreamError::Fetch(FetchError::TooLarge(limit)));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(inner.config.upstream_timeout, work)
        .await
        .map_err(|_| UpstreamError::Fetch(FetchError::Timeout))?
}

/// Reads the whole answer (a list: small, and its stream ends with the response), rewrites the
/// response to `id`, and answers in the same form.
async fn respond_rewritten(
    inner: &Inner,
    res: reqwest::Response,
    gateway_session: Option<&str>,
    id: &Value,
    rewrite: &mut dyn FnMut(&mut Value),
) -> HttpResponse {
    let status = res.status();
    if status.is_server_error() {
        return UpstreamError::Status(status.as_u16()).into_response(Some(id));
    }
    let mut out = HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    copy_headers(&res, &mut out, gateway_session.is_some());
    let sse = is_sse(&res);
    let bytes = match read_bounded(inner, res).await {
        Ok(b) => b,
        Err(e) => return e.into_response(Some(id)),
    };
    if !status.is_success() {
        return out.body(bytes);
    }
    match filter::rewrite_body(&bytes, sse, id, rewrite) {
        Some(b) => out.body(b),
        None => UpstreamError::Garbage.into_response(Some(id)),
    }
}

/// The user has no usable grant: answer `initialize` locally (with a gateway session), accept
/// notifications, and answer anything else with the connect-first answer of its era.
fn connect_first(
    inner: &Inner,
    req: &HttpRequest,
    caller: &Caller,
    message: &Message,
    era: Era,
    session: Option<&str>,
    missing: &Missing,
) -> HttpResponse {
    let id = message.id.as_ref();
    if !matches!(missing, Missing::NotConnected { .. }) {
        return json_response(200, &rpc::error(id, code::UPSTREAM_UNAVAILABLE, &missing.message(), None));
    }
    let envelope = inner.runtime.store.envelope();
    if !message.is_request() {
        return HttpResponse::Accepted().finish();
    }
    let server_name = &caller.route.server.name;
    if message.method() == "initialize" {
        let params = message.params().cloned().unwrap_or(Value::Null);
        let url = rpc::supports_url_elicitation(message.capabilities());
        let version = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-06-18").to_owned();
        let Some(sid) = sessions::seal(envelope, &caller.key, params, url) else {
            return json_response(500, &rpc::error(id, -32603, "the session could not be created", None));
        };
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": true}, "prompts": {}, "resources": {}},
            "serverInfo": {"name": server_name, "version": "switchboard-gateway"},
            "instructions": format!("{server_name} needs this user to connect it first; calls will say how."),
        });
        return HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("mcp-session-id", sid))
            .body(rpc::result(id, result).to_string());
    }
    let url_capable = match era {
        Era::Modern => rpc::supports_url_elicitation(message.capabilities()),
        Era::Legacy => match session {
            Some(s) if sessions::is_gateway_session(s) => {
                sessions::open(envelope, &caller.key, s).is_some_and(|p| p.url)
            }
            Some(s) => inner.sessions.url_capable.get(&s.to_owned()).unwrap_or(false),
            None => false,
        },
    };
    let mut request = ConnectRequest::for_grant(&caller.key);
    if let Some(s) = session.filter(|s| sessions::is_gateway_session(s)) {
        request.id = sessions::elicitation_id(s);
    }
    let Some(url) = inner.connect_url(&request) else {
        return json_response(500, &rpc::error(id, -32603, "the connect link could not be created", None));
    };
    let _ = req;
    tracing::info!(tenant.id = %caller.key.tenant_id, elicitation = %request.id, "connect required");
    let a = connect::answer(envelope, message, era, url_capable, &request, &url, server_name);
    json_response(a.status, &a.body)
}

async fn get(gw: web::Data<Gateway>, req: HttpRequest, path: Segments) -> HttpResponse {
    stream_or_end(&gw, &req, &path, reqwest::Method::GET).await
}

async fn delete(gw: web::Data<Gateway>, req: HttpRequest, path: Segments) -> HttpResponse {
    stream_or_end(&gw, &req, &path, reqwest::Method::DELETE).await
}

/// GET (the session's stream) and DELETE (its end): forwarded with the session, as they are.
async fn stream_or_end(
    gw: &Gateway,
    req: &HttpRequest,
    path: &(String, String, String),
    method: reqwest::Method,
) -> HttpResponse {
    let inner = &gw.inner;
    if let Err(r) = inner.check_origin(req) {
        return inner.refusal(path, &r);
    }
    let caller = match inner.authenticate(bearer(req), (&path.0, &path.1, &path.2)).await {
        Ok(c) => c,
        Err(r) => return inner.refusal(path, &r),
    };
    if let Err(r) = caller.authorize("list", None) {
        return inner.refusal(path, &r);
    }
    let session = header(req, "mcp-session-id").map(str::to_owned);
    let credential = match inner.credential(&caller, None).await {
        Ok(Ok(c)) => c,
        // Nothing upstream yet. A gateway session's stream is the gateway's own: it tells the
        // client when the user has connected (the elicitation is complete).
        Ok(Err(_)) => {
            return match (method, session.as_deref()) {
                (reqwest::Method::DELETE, _) => HttpResponse::Ok().finish(),
                (_, Some(s)) if sessions::is_gateway_session(s) => wait_for_connection(gw.clone(), caller, s),
                _ => HttpResponse::MethodNotAllowed().insert_header(("allow", "POST, DELETE")).finish(),
            };
        }
        Err(r) => return inner.refusal(path, &r),
    };
    let upstream_session = match session.as_deref() {
        Some(s) if sessions::is_gateway_session(s) => {
            let mapped = inner.sessions.upstream.get(&s.to_owned());
            if method == reqwest::Method::DELETE {
                inner.sessions.upstream.remove(&s.to_owned());
                if mapped.is_none() {
                    return HttpResponse::Ok().finish();
                }
            }
            match mapped {
                Some(m) => Some(m),
                None => match inner.upstream_session(req, &caller, &credential, s).await {
                    Ok(u) => u,
                    Err(response) => return response,
                },
            }
        }
        other => other.map(str::to_owned),
    };
    let res = match inner.send(req, &caller, credential, method, None, upstream_session.as_deref()).await {
        Ok(r) => r,
        Err(e) => return e.into_response(None),
    };
    let status = res.status();
    let mut out = HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    copy_headers(&res, &mut out, session.as_deref().is_some_and(sessions::is_gateway_session));
    if let Some(allow) = res.headers().get("allow").and_then(|v| v.to_str().ok()) {
        out.insert_header(("allow", allow.to_owned()));
    }
    if is_sse(&res) {
        out.insert_header(("x-accel-buffering", "no"));
        return out
            .streaming(res.bytes_stream().map_err(|_| actix_web::error::ErrorBadGateway("upstream stream ended")));
    }
    match read_bounded(inner, res).await {
        Ok(b) => out.body(b),
        Err(e) => e.into_response(None),
    }
}

/// The SSE stream of a gateway session whose user has not connected yet: a comment at once,
/// keep-alives, and — when a change says the grant holds a token now —
/// `notifications/elicitation/complete` for the session's elicitation, after which the stream
/// ends (the client's next GET reaches the upstream).
fn wait_for_connection(gateway: Gateway, caller: Caller, session: &str) -> HttpResponse {
    use switchboard_worker::changes::Change;
    use tokio::sync::broadcast::error::RecvError;
    const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);
    enum Step {
        Start,
        Wait,
        Done,
    }
    let changes = gateway.inner.runtime.changes.subscribe();
    let id = sessions::elicitation_id(session).to_string();
    let caller = std::sync::Arc::new(caller);
    let stream = futures_util::stream::unfold((Step::Start, changes), move |(step, mut changes)| {
        let (gateway, caller, id) = (gateway.clone(), caller.clone(), id.clone());
        async move {
            let key = &caller.key;
            match step {
                Step::Start => {
                    let hello = Bytes::from_static(b": waiting for the user to connect\n\n");
                    Some((Ok::<_, actix_web::Error>(hello), (Step::Wait, changes)))
                }
                Step::Done => None,
                Step::Wait => loop {
                    match tokio::time::timeout(KEEP_ALIVE, changes.recv()).await {
                        Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (Step::Wait, changes))),
                        Ok(Err(RecvError::Closed)) => return None,
                        Ok(Ok(Change::Grant { tenant, user, agent, server }))
                            if tenant == key.tenant_id
                                && user == key.user_id
                                && agent == key.agent_id
                                && server == key.mcp_server_id => {}
                        Ok(Err(RecvError::Lagged(_))) => {}
                        Ok(Ok(_)) => continue,
                    }
                    if let Ok(Ok(_)) = gateway.inner.credential(&caller, None).await {
                        let note = json!({"jsonrpc": "2.0", "method": "notifications/elicitation/complete", "params": {"elicitationId": id}});
                        let event = Bytes::from(format!("event: message\ndata: {note}\n\n"));
                        return Some((Ok(event), (Step::Done, changes)));
                    }
                },
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}

/// `GET /connect/{request}`: what a user who opened a connect link sees. It starts nothing: the
/// tenant's app confirms the request with the user's ticket and sends the browser on.
async fn connect_page(gw: web::Data<Gateway>, path: web::Path<String>) -> HttpResponse {
    let envelope = gw.inner.runtime.store.envelope();
    let (status, title, text) = match connect::open(envelope, &path) {
        Ok(_) => (
            StatusCode::OK,
            "Connect from your app",
            "This link connects a service for your agent. For your safety it only works from the app you use the agent in: go back to it and confirm there.".to_owned(),
        ),
        Err(e) => (StatusCode::BAD_REQUEST, "Link not valid", e.to_string()),
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("content-security-policy", "default-src 'none'; frame-ancestors 'none'"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_gateway_serves_loopback_origins_and_a_public_one_only_its_own() {
        let local = Url::parse("http://127.0.0.1:8080").ok();
        for origin in ["http://127.0.0.1:8080", "http://127.0.0.1:39239", "http://localhost:8080", "http://[::1]:3000"]
        {
            assert!(origin_allowed(local.as_ref(), true, &[], origin), "{origin}");
        }
        for origin in
            ["http://evil.example.com", "http://127.0.0.1.evil.example.com", "null", "file://", "http://10.0.0.1"]
        {
            assert!(!origin_allowed(local.as_ref(), true, &[], origin), "{origin}");
        }
        let public = Url::parse("https://gw.example.com").ok();
        let allowed = ["https://app.example.com".to_owned()];
        assert!(origin_allowed(public.as_ref(), false, &allowed, "https://gw.example.com"));
        assert!(origin_allowed(public.as_ref(), false, &allowed, "https://app.example.com/"));
        assert!(!origin_allowed(public.as_ref(), false, &allowed, "http://localhost:3000"));
    }
}
