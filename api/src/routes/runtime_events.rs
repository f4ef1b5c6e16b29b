//! `GET /v1/runtime/events`: connection events as server-sent events, for a console that wants to
//! update without polling. Only the ticket's user's events, for agents the ticket covers; the
//! stream ends when the ticket expires. Each event carries its id, so a client that reconnects
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
    let stream = futures_util::stream::unfold(Cursor { after, last_sent: Instant::now() }, move |mut cur| {
        let (store, ticket, user) = (store.clone(), ticket.clone(), user.clone());
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
                    let mine = e.data.get("user_id").and_then(serde_json::Value::as_str) == Some(user.as_str())
                        && agent.is_some_and(|a| ticket.authorize_agent(a, None, "events").is_ok());
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
