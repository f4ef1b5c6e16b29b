//! `GET /v1/runtime/events`: connection events as server-sent events, for a console that wants to
//! update without polling. Only the ticket's user's events, for agents (and, for a narrowed
//! ticket, servers) the ticket covers; the stream ends when the ticket expires. Each event carries its id, so a client that reconnects
//! with `Last-Event-ID` misses nothing; without one it gets what happens from now on.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use switchboard_domain::AgentId;

use crate::auth::TicketContext;
use crate::error::ApiError;
use crate::state::AppState;

const POLL: Duration = Duration::from_millis(500);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const LAG: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

struct Cursor {
    after: uuid::Uuid,
    last_sent: Instant,
}

/// This user's connection events, live (`text/event-stream`). Events: `connection.refreshed`,
/// `connection.recovered`, `connection.refresh_failed`, `connection.reauth_required`,
/// `connection.revoked`, `job.dead_lettered`; `data` is the event's JSON.
#[utoipa::path(tag = "runtime", responses((status = 200, content_type = "text/event-stream", body = String)),
    security(("session_ticket" = [])))]
#[get("/events")]
#[tracing::instrument(skip_all, fields(tenant.id = %ticket.tenant_id))]
pub async fn stream_runtime_events(
    state: web::Data<AppState>,
    ticket: TicketContext,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = ticket.user()?;
    let after = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(uuid::Uuid::now_v7);
    let store = state.store.clone();
    let gateway = state.gateway.clone();
    let stream = futures_util::stream::unfold(Cursor { after, last_sent: Instant::now() }, move |mut cur| {
        let (store, ticket, user, gateway) = (store.clone(), ticket.clone(), user.clone(), gateway.clone());
        async move {
            loop {
                // An expired ticket ends the stream (the client mints a new one and resumes with
                // Last-Event-ID). Asked about no agent, an unexpired ticket answers "out of scope".
                if matches!(
                    ticket.authorize_agent(AgentId::from(uuid::Uuid::nil()), None, "events"),
                    Err(ApiError::Ticket(switchboard_domain::ticket::TicketError::Expired))
                ) {
                    return None;
                }
                // Only events older than LAG: an event id is taken before its transaction commits,
                // so a slow transaction's event could otherwise appear behind the cursor.
                // A database that does not answer right now is waited out (with keep-alives), not
                // taken as the end of the stream: the client would see a stream that just stops.
                let events = match ticket.store(&store).events_after(Some(cur.after), 100).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading events for a stream failed; retrying");
                        Vec::new()
                    }
                };
                let settled = switchboard_domain::clock::now() - LAG;
                let events: Vec<_> = events.into_iter().take_while(|e| e.created_at <= settled).collect();
                let mut chunk = String::new();
                for e in &events {
                    cur.after = e.id;
                    let agent = e
                        .data
                        .get("agent_id")
                        .and_then(serde_json::Value::as_str)
                        .and_then(|a| uuid::Uuid::parse_str(a).ok())
                        .map(AgentId::from);
                    let server = e.data.get("mcp_server_id").and_then(serde_json::Value::as_str);
                    let mine = e.data.get("user_id").and_then(serde_json::Value::as_str) == Some(user.as_str())
                        && match agent {
                            Some(a) => covers(&gateway, &ticket, a, server).await,
                            None => false,
                        };
                    if mine {
                        let data = serde_json::json!({"type": e.event_type, "timestamp": e.created_at, "data": e.data});
                        chunk.push_str(&format!("id: {}\nevent: {}\ndata: {data}\n\n", e.id, e.event_type));
                    }
                }
                if !chunk.is_empty() {
                    cur.last_sent = Instant::now();
                    return Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), cur));
                }
                if events.is_empty() {
                    if cur.last_sent.elapsed() >= KEEP_ALIVE {
                        cur.last_sent = Instant::now();
                        return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), cur));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

/// Whether the ticket covers events of `agent` and `server`. A narrowed ticket is asked about the
/// server too, by id and slug (from the gateway's views), so a worker narrowed to one server sees
/// only its events; anything that cannot be looked up is not shown.
async fn covers(
    gateway: &switchboard_gateway::Gateway,
    ticket: &TicketContext,
    agent: AgentId,
    server: Option<&str>,
) -> bool {
    if !ticket.attenuated() {
        return ticket.authorize_agent(agent, None, "events").is_ok();
    }
    let Ok(attachments) = gateway.agent_attachments(ticket.tenant_id, agent).await else { return false };
    let attachment = attachments.iter().find(|a| server.is_some_and(|s| a.mcp_server_id.to_string() == s));
    let request = switchboard_domain::ticket::TicketRequest {
        server,
        server_slug: attachment.map(|a| a.server_slug.as_str()),
        agent_slug: attachments.first().map(|a| a.agent_slug.as_str()),
        ..switchboard_domain::ticket::TicketRequest::new(agent, "events")
    };
    ticket.authorize(&request).is_ok()
}
