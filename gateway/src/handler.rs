//! `POST /mcp/{tenant}/{agent}/{server}`, the gateway's hot path: origin, ticket, route, filter,
//! credential, upstream, answer — and "connect first" when the user has no usable grant. The
//! other methods are in `streams.rs`, the answers in `answer.rs`, the pages in `pages.rs`.

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_domain::finding::FindingCode;
use switchboard_worker::consent::{Missing, Source};
use tracing::Instrument as _;

use crate::answer::{Segments, bearer, json_response, respond_rewritten, respond_streaming};
use crate::connect::{self, ConnectRequest};
use crate::filter::{self, Cursors};
use crate::inbound::{Caller, Refusal};
use crate::observe::Observed;
use crate::rpc::{self, Era, Message, code};
use crate::{Gateway, Inner, sessions};

/// The finding of a grant the gateway cannot use.
fn missing_finding(missing: &Missing) -> FindingCode {
    match missing {
        Missing::NotConnected { status: Some(switchboard_domain::connection::ConnectionStatus::NeedsReauth) } => {
            FindingCode::NeedsReauth
        }
        Missing::NotConnected { .. } => FindingCode::NotConnected,
        // The provider refused the server's own client credentials.
        Missing::Server(why) if switchboard_domain::finding::provider_code(why) == Some("invalid_client") => {
            FindingCode::InvalidClient
        }
        Missing::Server(_) => FindingCode::ServerNotReady,
        Missing::Unavailable => FindingCode::RefreshFailing,
    }
}

impl Inner {
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

/// What one request is about, for the ticket and the span.
fn operation(method: &str) -> &'static str {
    match method {
        "tools/call" => "call",
        "prompts/get" | "resources/read" => "read",
        _ => "list",
    }
}

pub(crate) async fn post(gw: web::Data<Gateway>, req: HttpRequest, path: Segments, body: Bytes) -> HttpResponse {
    let inner = &gw.inner;
    let mut observed = Observed::start(&path, "post");
    let span = observed.span.clone();
    let response = post_inner(inner, &req, &path, body, &mut observed).instrument(span).await;
    observed.finish(inner);
    response
}

async fn post_inner(
    inner: &Inner,
    req: &HttpRequest,
    path: &(String, String, String),
    body: Bytes,
    observed: &mut Observed,
) -> HttpResponse {
    if let Err(r) = inner.check_origin(req) {
        return inner.refusal(path, &r);
    }
    let caller = match inner.authenticate(bearer(req), (&path.0, &path.1, &path.2)).await {
        Ok(c) => c,
        Err(r) => return inner.refusal(path, &r),
    };
    serve(inner, req.headers(), path, &caller, body, observed).await
}

/// One client message on an authenticated route, with the client's `headers` (the agent
/// endpoint, `agent.rs`, calls it per upstream with headers of its own): the ticket's checks,
/// the filter, the credential, the upstream, the answer.
pub(crate) async fn serve(
    inner: &Inner,
    headers: &actix_web::http::header::HeaderMap,
    path: &(String, String, String),
    caller: &Caller,
    body: Bytes,
    observed: &mut Observed,
) -> HttpResponse {
    let span = observed.span.clone();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    observed.route(caller);
    observed.ticket(caller);
    let message = match Message::parse(&body) {
        Ok(m) => m,
        Err(e) => return crate::answer::bad_message(&e),
    };
    let method = message.method().to_owned();
    span.record("mcp.method", method.as_str());
    observed.method = crate::metrics::method_label(&method);
    let era = message.era(header("mcp-protocol-version"));
    let target = message.target().map(str::to_owned);
    if method == "tools/call"
        && let Some(t) = &target
    {
        span.record("mcp.tool", t.as_str());
    }
    let tool = (method == "tools/call").then_some(target.as_deref()).flatten();
    let arguments = tool.and_then(|_| message.params()).and_then(|p| p.get("arguments")).and_then(Value::as_object);
    match caller.authorize(operation(&method), tool, arguments) {
        Ok(()) => {}
        // A cap of the ticket: refused before the upstream, as the tool's own invalid params.
        Err(Refusal::Argument(why)) => {
            observed.failed(FindingCode::ArgumentLimit, why.clone());
            inner.audit_refusal(
                caller,
                "gateway.argument_limit",
                json!({"code": FindingCode::ArgumentLimit, "method": method, "tool": tool, "reason": why}),
            );
            let error = rpc::finding_error(message.id.as_ref(), code::INVALID_PARAMS, &why, FindingCode::ArgumentLimit);
            return json_response(200, &error);
        }
        Err(Refusal::Scope) => {
            let finding = caller.scope_finding(operation(&method), tool, arguments);
            observed.failed(FindingCode::TicketScope, finding.detail.clone());
            inner.audit_refusal(
                caller,
                "gateway.ticket_scope",
                json!({"code": FindingCode::TicketScope, "method": method, "tool": tool, "evidence": finding.evidence}),
            );
            return inner.refusal(path, &Refusal::ScopeExplained(Box::new(finding)));
        }
        Err(r) => {
            // An expired or invalid ticket: the caller's, counted as a client error.
            observed.outcome = "refused";
            return inner.refusal(path, &r);
        }
    }
    if let Err(refusal) = filter::check_call(&caller.route.filter, &method, target.as_deref()) {
        observed.failed(FindingCode::ToolNotAllowed, refusal.clone());
        inner.audit_refusal(
            caller,
            "gateway.not_allowed",
            json!({"code": FindingCode::ToolNotAllowed, "method": method, "name": target}),
        );
        let code = if method.starts_with("resources/") && era == Era::Legacy {
            code::RESOURCE_NOT_FOUND
        } else {
            code::INVALID_PARAMS
        };
        let error = rpc::finding_error(message.id.as_ref(), code, &refusal, FindingCode::ToolNotAllowed);
        return json_response(200, &error);
    }
    let session = header("mcp-session-id").map(str::to_owned);
    // A gateway session that ended, expired or is another grant's: not found, as the spec says.
    if let Some(s) = session.as_deref().filter(|s| sessions::is_gateway_session(s))
        && inner.sessions.open(inner.runtime.store.envelope(), &caller.key, s).is_none()
    {
        observed.outcome = "session_not_found";
        return HttpResponse::NotFound().finish();
    }
    let credential = match inner.credential(caller, None).await {
        Ok(Ok(c)) => c,
        Ok(Err(missing)) => {
            let finding = missing_finding(&missing);
            // For a user yet to connect, `initialize` and notifications are answered here, as
            // they should be.
            let answered_here = matches!(missing, Missing::NotConnected { .. })
                && (!message.is_request() || message.method() == "initialize");
            if answered_here {
                observed.outcome = "ok";
            } else {
                observed.failed(finding, missing.message());
            }
            if matches!(missing, Missing::NotConnected { .. })
                && message.is_request()
                && message.method() != "initialize"
            {
                inner.audit_refusal(caller, "gateway.connect_required", json!({"code": finding, "method": method}));
            }
            return connect_first(inner, caller, &message, era, session.as_deref(), &missing);
        }
        Err(r) => return inner.refusal(path, &r),
    };
    // Rewrite what the upstream must not see: the gateway's cursor and its own requestState.
    let mut body = body;
    let mut value = None;
    if filter::list_of(&method).is_some()
        && let Some(cursor) = message.cursor()
    {
        let Some(upstream_cursor) = inner.cursors(caller).open(cursor) else {
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
    let gateway_session = session.as_deref().filter(|s| sessions::is_gateway_session(s));
    let upstream_session = match gateway_session {
        Some(s) => match inner.upstream_session(caller, &credential, s).await {
            Ok(u) => u,
            Err(e) => {
                observed.failed(e.finding(), "the upstream session could not be started");
                return e.into_response(message.id.as_ref());
            }
        },
        None => session.clone(),
    };
    let rewrite = filter::list_of(&method).is_some() && message.id.is_some();
    let grant = matches!(credential.source, Some(Source::Grant { .. }));
    let client = headers;
    let mut res = inner
        .send(
            client,
            caller,
            credential.clone(),
            reqwest::Method::POST,
            Some(body.clone()),
            upstream_session.as_deref(),
        )
        .await;
    // A gateway session whose upstream session ended (the upstream restarted, or expired it):
    // the upstream is initialized again with the client's parameters and the request resent,
    // once — the client keeps its session and never sees the 404.
    if let (Ok(r), Some(s), Some(_)) = (&res, gateway_session, &upstream_session)
        && r.status() == reqwest::StatusCode::NOT_FOUND
    {
        inner.sessions.upstream.remove(&s.to_owned());
        let again = match inner.upstream_session(caller, &credential, s).await {
            Ok(u) => u,
            Err(e) => {
                observed.failed(e.finding(), "the upstream session could not be started again");
                return e.into_response(message.id.as_ref());
            }
        };
        res = inner.send(client, caller, credential, reqwest::Method::POST, Some(body), again.as_deref()).await;
    }
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            observed.failed(e.finding(), "the MCP server could not be reached");
            return e.into_response(message.id.as_ref());
        }
    };
    span.record("upstream.status", res.status().as_u16());
    // Still refused after the credential was replaced: the upstream's 401 must not reach the
    // client, which would take it for a verdict on its own ticket.
    if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        observed.failed(FindingCode::UpstreamUnauthorized, "the MCP server refused the credential (HTTP 401)");
        if grant {
            let missing =
                Missing::NotConnected { status: Some(switchboard_domain::connection::ConnectionStatus::NeedsReauth) };
            return connect_first(inner, caller, &message, era, session.as_deref(), &missing);
        }
        let detail = "the MCP server refused the credential Switchboard presented for it (HTTP 401): check the server's auth configuration";
        let error = rpc::finding_error(
            message.id.as_ref(),
            code::UPSTREAM_UNAVAILABLE,
            detail,
            FindingCode::UpstreamUnauthorized,
        );
        return json_response(200, &error);
    }
    if method == "initialize"
        && let Some(sid) = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
    {
        let url = rpc::supports_url_elicitation(message.capabilities());
        inner.sessions.url_capable.put(sid.to_owned(), url);
    }
    match res.status().as_u16() {
        200..=299 => observed.outcome = "ok",
        // Only a 403 whose challenge says so is a lack of scope (a WAF's or a tool's own 403
        // is not).
        403 if res
            .headers()
            .get_all("www-authenticate")
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("insufficient_scope"))) =>
        {
            observed.failed(
                FindingCode::InsufficientScope,
                "the MCP server refused the token for lack of scope (HTTP 403)",
            );
        }
        _ => observed.outcome = "upstream_error",
    }
    if rewrite {
        let cursors = inner.cursors(caller);
        let id = message.id.clone().unwrap_or(Value::Null);
        let mut rewrite = |result: &mut Value| {
            filter::rewrite_list(&method, result, &caller.route.filter, &cursors, era);
        };
        respond_rewritten(inner, res, gateway_session, &id, &mut rewrite, observed).await
    } else {
        // A subscription's stream is meant to last: it is relayed as a session's GET stream is.
        let watched = method != "subscriptions/listen";
        respond_streaming(inner, res, gateway_session, message.id.as_ref(), watched, observed).await
    }
}

/// The user has no usable grant: answer `initialize` locally (with a gateway session), accept
/// notifications, and answer anything else with the connect-first answer of its era.
fn connect_first(
    inner: &Inner,
    caller: &Caller,
    message: &Message,
    era: Era,
    session: Option<&str>,
    missing: &Missing,
) -> HttpResponse {
    let id = message.id.as_ref();
    if !matches!(missing, Missing::NotConnected { .. }) {
        let error = rpc::finding_error(id, code::UPSTREAM_UNAVAILABLE, &missing.message(), missing_finding(missing));
        return json_response(200, &error);
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
                inner.sessions.open(envelope, &caller.key, s).is_some_and(|p| p.url)
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
    tracing::info!(tenant.id = %caller.key.tenant_id, elicitation = %request.id, "connect required");
    let a = connect::answer(envelope, message, era, url_capable, &request, &url, server_name);
    json_response(a.status, &a.body)
}
