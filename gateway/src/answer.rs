//! What the gateway answers itself: refusals (problem documents, with the route's resource
//! metadata on a 401), JSON-RPC errors for upstream failures, and the upstream's answer relayed —
//! streamed and watched (`sse.rs`), or read, checked and rewritten.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};
use switchboard_discovery::FetchError;
use switchboard_domain::finding::FindingCode;

use crate::Inner;
use crate::inbound::Refusal;
use crate::rpc::{self, code};
use crate::upstream::{UpstreamError, copy_headers};
use crate::{filter, sse};

pub(crate) type Segments = web::Path<(String, String, String)>;

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = header(req, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

pub(crate) fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("application/json")
        .body(body.to_string())
}

/// `tenant/agent/server`, or `tenant/agent` for an agent endpoint (no server segment).
fn route_path(s: &(String, String, String)) -> String {
    if s.2.is_empty() { format!("{}/{}", s.0, s.1) } else { format!("{}/{}/{}", s.0, s.1, s.2) }
}

/// The answer to a body that is not one JSON-RPC message (a batch, or not JSON at all).
pub(crate) fn bad_message(e: &rpc::BadMessage) -> HttpResponse {
    match e {
        rpc::BadMessage::Batch => {
            json_response(400, &rpc::error(None, code::INVALID_REQUEST, "JSON-RPC batches are not supported", None))
        }
        _ => json_response(400, &rpc::error(None, code::PARSE_ERROR, "the body is not one JSON-RPC message", None)),
    }
}

pub(crate) fn problem(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("application/problem+json").body(
        json!({"type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "code": code, "detail": detail})
            .to_string(),
    )
}

impl Inner {
    /// A route's URL; with an empty server segment, the agent endpoint's.
    pub(crate) fn route_url(&self, s: &(String, String, String)) -> String {
        format!("{}/mcp/{}", self.config.public_url, route_path(s))
    }

    pub(crate) fn metadata_url(&self, s: &(String, String, String)) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp/{}", self.config.public_url, route_path(s))
    }

    /// The HTTP answer to a refusal. 401s name the route's resource metadata (RFC 9728).
    pub(crate) fn refusal(&self, s: &(String, String, String), refusal: &Refusal) -> HttpResponse {
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
            Refusal::Ticket(T::TooComplex(why)) => unauthorized(
                "ticket_too_complex",
                &format!("the session ticket is too complex to evaluate: {why}"),
                Some("invalid_token"),
            ),
            Refusal::Argument(why) => problem(StatusCode::FORBIDDEN, "ticket_scope", why),
            Refusal::Audience => unauthorized(
                "wrong_audience",
                "this access token was issued for another MCP server URL (its resource); sign in for this one",
                Some("invalid_token"),
            ),
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
            Refusal::ScopeExplained(finding) => {
                let mut body = json!({"type": "about:blank", "title": "Forbidden", "status": 403, "code": "ticket_scope", "detail": finding.detail, "finding": finding});
                if let Some(map) = body.as_object_mut() {
                    map.insert("hint".into(), json!(finding.fix));
                }
                HttpResponse::Forbidden().content_type("application/problem+json").body(body.to_string())
            }
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
}

/// Upstream failures, as the client sees them: a JSON-RPC error with a clear message.
impl UpstreamError {
    /// The finding this failure is.
    pub(crate) fn finding(&self) -> FindingCode {
        match self {
            Self::Fetch(FetchError::Timeout) => FindingCode::UpstreamTimeout,
            Self::Fetch(FetchError::Blocked) => FindingCode::BlockedByNetworkPolicy,
            Self::Garbage | Self::Fetch(FetchError::TooLarge(_)) => FindingCode::UpstreamInvalid,
            Self::Fetch(_) | Self::Status(_) | Self::UnknownSession => FindingCode::UpstreamUnavailable,
        }
    }

    pub(crate) fn into_response(self, id: Option<&Value>) -> HttpResponse {
        let finding = self.finding();
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
            Self::UnknownSession => return HttpResponse::NotFound().finish(),
        };
        let status = if id.is_some() { 200 } else { 502 };
        json_response(status, &rpc::finding_error(id, c, &message, finding))
    }
}

pub(crate) fn is_sse(res: &reqwest::Response) -> bool {
    res.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"))
}

/// Streams the upstream's answer through as it arrives (SSE) — watched, when it answers request
/// `id`, for garbage, silence and an early end (`sse.rs`) — or passes a JSON answer on after
/// checking it is JSON. Upstream server errors become JSON-RPC errors.
pub(crate) async fn respond_streaming(
    inner: &Inner,
    res: reqwest::Response,
    gateway_session: Option<&str>,
    id: Option<&Value>,
    watched: bool,
    observed: &mut crate::observe::Observed,
) -> HttpResponse {
    let status = res.status();
    if status.is_server_error() {
        let e = UpstreamError::Status(status.as_u16());
        observed.failed(e.finding(), format!("the MCP server answered HTTP {status}"));
        return e.into_response(id);
    }
    let mut out = HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    copy_headers(&res, &mut out, gateway_session.is_some());
    if is_sse(&res) {
        out.insert_header(("x-accel-buffering", "no"));
        if let (Some(id), true, true) = (id, watched, status.is_success()) {
            let deadlines = sse::Deadlines {
                idle: inner.config.upstream_timeout,
                total: inner.config.call_timeout,
                max_event: inner.config.max_body_bytes,
            };
            let on_answer = observed.defer(inner);
            return out.streaming(sse::watch(res.bytes_stream(), id.clone(), deadlines, on_answer));
        }
        return out.streaming(relay(res));
    }
    let bytes = match read_bounded(inner, res).await {
        Ok(b) => b,
        Err(e) => {
            observed.failed(e.finding(), "the MCP server's answer could not be read");
            return e.into_response(id);
        }
    };
    if status.is_success()
        && !bytes.is_empty()
        && id.is_some()
        && serde_json::from_slice::<Value>(&bytes).map_or(true, |v| !v.is_object())
    {
        observed.failed(FindingCode::UpstreamInvalid, "the MCP server answered something that is not MCP");
        return UpstreamError::Garbage.into_response(id);
    }
    out.body(bytes)
}

/// A stream relayed as it is (a session's GET stream, a subscription): it lasts as long as the
/// upstream keeps it open.
pub(crate) fn relay(res: reqwest::Response) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    res.bytes_stream().map_err(|_| actix_web::error::ErrorBadGateway("upstream stream ended"))
}

pub(crate) async fn read_bounded(inner: &Inner, res: reqwest::Response) -> Result<Bytes, UpstreamError> {
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
pub(crate) async fn respond_rewritten(
    inner: &Inner,
    res: reqwest::Response,
    gateway_session: Option<&str>,
    id: &Value,
    rewrite: &mut dyn FnMut(&mut Value),
    observed: &mut crate::observe::Observed,
) -> HttpResponse {
    let status = res.status();
    if status.is_server_error() {
        let e = UpstreamError::Status(status.as_u16());
        observed.failed(e.finding(), format!("the MCP server answered HTTP {status}"));
        return e.into_response(Some(id));
    }
    let mut out = HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    copy_headers(&res, &mut out, gateway_session.is_some());
    let sse = is_sse(&res);
    let bytes = match read_bounded(inner, res).await {
        Ok(b) => b,
        Err(e) => {
            observed.failed(e.finding(), "the MCP server's answer could not be read");
            return e.into_response(Some(id));
        }
    };
    if !status.is_success() {
        return out.body(bytes);
    }
    match filter::rewrite_body(&bytes, sse, id, rewrite) {
        Some(b) => out.body(b),
        None => {
            observed.failed(FindingCode::UpstreamInvalid, "the MCP server answered a list that is not MCP");
            UpstreamError::Garbage.into_response(Some(id))
        }
    }
}
