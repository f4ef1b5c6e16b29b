//! `Idempotency-Key` on create endpoints: the same key and body replay the first response; the
//! same key with another body is a 422; a key whose first request is still running is a 409.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use switchboard_domain::TenantId;
use switchboard_domain::store::{Begin, IdempotencyKey};

use crate::error::ApiError;
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// A response to remember: status, JSON body and an optional `Location`.
pub struct Created {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub location: Option<String>,
}

fn respond(status: StatusCode, body: Vec<u8>, location: Option<&str>, replayed: bool) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.content_type("application/json");
    if let Some(l) = location {
        res.insert_header((actix_web::http::header::LOCATION, l.to_owned()));
    }
    if replayed {
        res.insert_header((REPLAYED, "true"));
    }
    res.body(body)
}

/// Runs `work` at most once per idempotency key in `scope` (`tenant` owns the record).
pub async fn run<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    tenant: TenantId,
    scope: &str,
    body: &serde_json::Value,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Created, ApiError>>,
{
    let key = match req.headers().get(HEADER) {
        None => {
            let c = work().await?;
            return Ok(respond(c.status, c.body.to_string().into_bytes(), c.location.as_deref(), false));
        }
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or_else(|| ApiError::BadRequest {
                code: switchboard_domain::ErrorCode::InvalidIdempotencyKey,
                detail: "Idempotency-Key must be 1-255 visible ASCII characters".into(),
                hint: Some("use a UUID per logical operation".into()),
            })?,
    };
    let fingerprint = format!("{} {}\n{}", req.method(), req.path(), body);
    let record = IdempotencyKey::new(tenant, scope, key, fingerprint.as_bytes());
    match state.store.begin_idempotent(&record).await? {
        Begin::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let stored: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let location = stored.get("__location").and_then(|l| l.as_str()).map(str::to_owned);
            let body = stored.get("body").map(ToString::to_string).unwrap_or_default();
            Ok(respond(status, body.into_bytes(), location.as_deref(), true))
        }
        Begin::Mismatch => Err(ApiError::IdempotencyMismatch),
        Begin::InProgress => Err(ApiError::IdempotencyInProgress),
        Begin::Proceed => match work().await {
            Ok(c) => {
                let stored = serde_json::json!({"body": c.body, "__location": c.location});
                state.store.complete_idempotent(&record, c.status.as_u16(), stored.to_string().as_bytes()).await?;
                Ok(respond(c.status, c.body.to_string().into_bytes(), c.location.as_deref(), false))
            }
            Err(e) => {
                // Let a corrected or later retry run: only successes are remembered.
                if let Err(release) = state.store.release_idempotent(&record).await {
                    tracing::warn!(error = %release, "could not release an idempotency key");
                }
                Err(e)
            }
        },
    }
}
