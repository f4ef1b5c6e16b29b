//! The one middleware around every request: request id, tracing span, access log, metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError as _, web};
use futures_util::FutureExt as _;
use tracing::Instrument as _;

use crate::metrics::RequestLabels;
use crate::state::AppState;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, as stored in its extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Accepts a caller's `X-Request-Id` when it is short and plain, else makes one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

pub async fn observe<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    // The path only: query strings can carry cursors and, one day, codes that must not be logged.
    let path = req.path().to_owned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let span = tracing::info_span!("http.request", request.id = %id, http.method = %method, http.route = tracing::field::Empty, http.status = tracing::field::Empty, tenant.id = tracing::field::Empty);
    // The deadline covers the handler up to the response head (an event stream's body is not
    // bound by it). A handler cut off here drops its futures: an open transaction rolls back.
    let deadline = state.as_ref().map_or(std::time::Duration::from_secs(30), |s| s.settings.request_timeout);
    let handled = std::panic::AssertUnwindSafe(next.call(req).instrument(span.clone())).catch_unwind();
    let Ok(caught) = tokio::time::timeout(deadline, handled).await else {
        let _enter = span.enter();
        let err = crate::error::ApiError::Timeout(deadline.as_secs());
        // Logged there, once, as a failed request.
        let mut res = err.error_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, v);
        }
        if let Some(state) = state {
            let labels = RequestLabels { method, route: "timed_out".into(), status: res.status().as_u16() };
            state.metrics.observe(labels, started.elapsed().as_secs_f64());
        }
        return Err(actix_web::error::InternalError::from_response(err, res).into());
    };
    // A panic was logged (once, with its backtrace) and counted by the panic hook; the caller gets
    // a 500 problem without detail, and the connection and the worker thread live on.
    let result = caught.unwrap_or_else(|_| {
        let err = crate::error::ApiError::Domain(switchboard_domain::DomainError::internal("a handler panicked"));
        let res = err.error_response();
        Err(actix_web::error::InternalError::from_response(err, res).into())
    });
    let mut res = match result {
        Ok(res) => res,
        Err(err) => {
            // Errors that escaped the handlers become responses here, so they get an id and a metric too.
            let res = err.error_response();
            return Err(actix_web::error::InternalError::from_response(err, res).into());
        }
    };
    let status = res.status().as_u16();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    span.record("http.route", route.as_str());
    span.record("http.status", status);
    let _enter = span.enter();
    let ms = elapsed.as_secs_f64() * 1000.0;
    // The access line; a 5xx's cause was logged once, at error level, where it was rendered.
    tracing::info!(%path, status, ms, "request");
    if let Some(state) = state {
        state.metrics.observe(RequestLabels { method, route, status }, elapsed.as_secs_f64());
    }
    Ok(res)
}
