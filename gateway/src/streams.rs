//! GET (a session's stream) and DELETE (its end) on a gateway route, and the gateway's own
//! stream for a session whose user has not connected yet.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde_json::json;
use switchboard_worker::changes::Change;
use tracing::Instrument as _;

use switchboard_domain::finding::FindingCode;

use crate::answer::{Segments, bearer, header, is_sse, read_bounded, relay};
use crate::inbound::{Caller, Refusal};
use crate::observe::Observed;
use crate::upstream::copy_headers;
use crate::{Gateway, sessions};

pub(crate) async fn get(gw: web::Data<Gateway>, req: HttpRequest, path: Segments) -> HttpResponse {
    observed(&gw, &req, &path, reqwest::Method::GET).await
}

pub(crate) async fn delete(gw: web::Data<Gateway>, req: HttpRequest, path: Segments) -> HttpResponse {
    observed(&gw, &req, &path, reqwest::Method::DELETE).await
}

async fn observed(
    gw: &Gateway,
    req: &HttpRequest,
    path: &(String, String, String),
    method: reqwest::Method,
) -> HttpResponse {
    let verb = if method == reqwest::Method::GET { "get" } else { "delete" };
    let mut observed = Observed::start(path, verb);
    observed.method = if method == reqwest::Method::GET { "stream" } else { "session/end" };
    let span = observed.span.clone();
    let response = stream_or_end(gw, req, path, method, &mut observed).instrument(span).await;
    observed.finish(&gw.inner);
    response
}

/// GET (the session's stream) and DELETE (its end): forwarded with the session, as they are.
async fn stream_or_end(
    gw: &Gateway,
    req: &HttpRequest,
    path: &(String, String, String),
    method: reqwest::Method,
    observed: &mut Observed,
) -> HttpResponse {
    let inner = &gw.inner;
    if let Err(r) = inner.check_origin(req) {
        return inner.refusal(path, &r);
    }
    let caller = match inner.authenticate(bearer(req), (&path.0, &path.1, &path.2)).await {
        Ok(c) => c,
        Err(r) => return inner.refusal(path, &r),
    };
    observed.route(&caller);
    observed.ticket(&caller);
    if let Err(r) = caller.authorize("list", None, None) {
        if matches!(r, Refusal::Scope) {
            let finding = caller.scope_finding("list", None, None);
            observed.failed(FindingCode::TicketScope, finding.detail.clone());
            inner.audit_refusal(
                &caller,
                "gateway.ticket_scope",
                json!({"code": FindingCode::TicketScope, "method": observed.method, "evidence": finding.evidence}),
            );
            return inner.refusal(path, &Refusal::ScopeExplained(Box::new(finding)));
        }
        observed.outcome = "refused";
        return inner.refusal(path, &r);
    }
    let session = header(req, "mcp-session-id").map(str::to_owned);
    let gateway_session = session.as_deref().filter(|s| sessions::is_gateway_session(s));
    // A gateway session that ended, expired or is another grant's: not found, as the spec says.
    if let Some(s) = gateway_session
        && inner.sessions.open(inner.runtime.store.envelope(), &caller.key, s).is_none()
    {
        observed.outcome = "session_not_found";
        return HttpResponse::NotFound().finish();
    }
    // The client ends a gateway session: ended here and, through the announcement, everywhere;
    // the upstream session behind it, when this process mapped one, is ended below.
    let mut ended_upstream = None;
    if let (Some(s), true) = (gateway_session, method == reqwest::Method::DELETE) {
        ended_upstream = inner.sessions.upstream.get(&s.to_owned());
        inner.sessions.end(s);
        inner.runtime.changes.publish(Change::SessionEnded { session: sessions::digest(s) });
        if ended_upstream.is_none() {
            observed.outcome = "ok";
            return HttpResponse::Ok().finish();
        }
    }
    let credential = match inner.credential(&caller, None).await {
        Ok(Ok(c)) => c,
        // Nothing upstream yet. A gateway session's stream is the gateway's own: it tells the
        // client when the user has connected (the elicitation is complete).
        Ok(Err(_)) => {
            observed.outcome = "ok";
            return match (method, gateway_session) {
                (reqwest::Method::DELETE, _) => HttpResponse::Ok().finish(),
                (_, Some(s)) => wait_for_connection(gw.clone(), caller, s),
                _ => HttpResponse::MethodNotAllowed().insert_header(("allow", "POST, DELETE")).finish(),
            };
        }
        Err(r) => return inner.refusal(path, &r),
    };
    let mut upstream_session = match gateway_session {
        Some(_) if ended_upstream.is_some() => ended_upstream,
        Some(s) => match inner.upstream_session(&caller, &credential, s).await {
            Ok(u) => u,
            Err(e) => {
                observed.failed(e.finding(), "the upstream session could not be started");
                return e.into_response(None);
            }
        },
        None => session.clone(),
    };
    let client = req.headers();
    let mut res =
        inner.send(client, &caller, credential.clone(), method.clone(), None, upstream_session.as_deref()).await;
    // The upstream forgot the session behind a gateway session: a stream is opened on a new one
    // (a DELETE has nothing left to end).
    if let (Ok(r), Some(s), Some(_)) = (&res, gateway_session, &upstream_session)
        && r.status() == reqwest::StatusCode::NOT_FOUND
    {
        if method == reqwest::Method::DELETE {
            observed.outcome = "ok";
            return HttpResponse::Ok().finish();
        }
        inner.sessions.upstream.remove(&s.to_owned());
        upstream_session = match inner.upstream_session(&caller, &credential, s).await {
            Ok(u) => u,
            Err(e) => {
                observed.failed(e.finding(), "the upstream session could not be started again");
                return e.into_response(None);
            }
        };
        res = inner.send(client, &caller, credential, method, None, upstream_session.as_deref()).await;
    }
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            observed.failed(e.finding(), "the MCP server could not be reached");
            return e.into_response(None);
        }
    };
    let status = res.status();
    observed.span.record("upstream.status", status.as_u16());
    observed.outcome = if status.is_success() { "ok" } else { "upstream_error" };
    let mut out = HttpResponse::build(StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    copy_headers(&res, &mut out, gateway_session.is_some());
    if let Some(allow) = res.headers().get("allow").and_then(|v| v.to_str().ok()) {
        out.insert_header(("allow", allow.to_owned()));
    }
    if is_sse(&res) {
        out.insert_header(("x-accel-buffering", "no"));
        return out.streaming(relay(res));
    }
    match read_bounded(inner, res).await {
        Ok(b) => out.body(b),
        Err(e) => {
            observed.failed(e.finding(), "the MCP server's answer could not be read");
            e.into_response(None)
        }
    }
}

/// The SSE stream of a gateway session whose user has not connected yet: a comment at once,
/// keep-alives, and — when a change says the grant holds a token now —
/// `notifications/elicitation/complete` for the session's elicitation, after which the stream
/// ends (the client's next GET reaches the upstream).
fn wait_for_connection(gateway: Gateway, caller: Caller, session: &str) -> HttpResponse {
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
