//! `deliver_event`: one connection event to the tenant's webhook (none set: nothing to do),
//! signed in the Standard Webhooks format. The `webhook-id` is the event's, on every attempt, so
//! receivers deduplicate; any 2xx is a delivery, anything else (3xx included) is retried.

use switchboard_discovery::Fetcher;
use switchboard_domain::DomainError;
use switchboard_domain::clock::Reading;
use switchboard_domain::store::{ClaimedJob, JobEnd, Store};
use url::Url;

use super::retry::retry_at;

pub(super) async fn run(
    store: &Store,
    fetcher: &Fetcher,
    job: &ClaimedJob,
    event_id: uuid::Uuid,
    clock: &Reading,
) -> Result<JobEnd, DomainError> {
    let store = store.tenant(job.tenant_id);
    let id = event_id;
    let (Some(webhook), Some(event)) = (store.webhook().await?, store.event(id).await?) else {
        return Ok(JobEnd::Done);
    };
    let Ok(url) = Url::parse(&webhook.url) else {
        return Ok(JobEnd::Dead { error: "the webhook URL is not a URL".into() });
    };
    let msg_id = format!("msg_{}", event.id.simple());
    let body =
        serde_json::json!({"type": event.event_type, "timestamp": event.created_at, "data": event.data}).to_string();
    // The database clock: receivers reject timestamps far from theirs, and a host clock can be off.
    let timestamp = clock.now().timestamp();
    let Some(signature) =
        switchboard_domain::webhook::sign(webhook.secret.expose(), &msg_id, timestamp, body.as_bytes())
    else {
        return Ok(JobEnd::Dead { error: "the webhook secret is malformed".into() });
    };
    let headers = switchboard_discovery::http::headers(&[
        ("content-type", "application/json"),
        ("webhook-id", &msg_id),
        ("webhook-timestamp", &timestamp.to_string()),
        ("webhook-signature", &signature),
    ]);
    Ok(match fetcher.post(&url, headers, body.into_bytes()).await {
        Ok(f) if f.status.is_success() => JobEnd::Done,
        Ok(f) => JobEnd::Retry {
            at: retry_at(clock, job.attempts, f.retry_after()),
            error: format!("the webhook answered {}", f.status.as_u16()),
        },
        Err(e) => JobEnd::Retry {
            at: retry_at(clock, job.attempts, None),
            error: format!("the webhook could not be reached ({e})"),
        },
    })
}
