//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(tag = "ops", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `ok`, `error: …` or `not_configured`, per dependency.
    pub checks: Checks,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub database: String,
    pub redis: String,
}

/// The database (and Redis, when configured) answer. 503 with the failing check otherwise.
#[utoipa::path(tag = "ops", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            // A public endpoint: say which check failed, not the driver's words.
            Ok(Err(switchboard_domain::DomainError::Unavailable(_))) => "error: unreachable".to_owned(),
            Ok(Err(_)) => "error: query failed".to_owned(),
            Err(_) => "error: timed out".to_owned(),
        }
    };
    let redis = async {
        match &state.redis {
            None => "not_configured".to_owned(),
            Some(r) => match tokio::time::timeout(CHECK_TIMEOUT, r.ping()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "error: timed out".to_owned(),
            },
        }
    };
    let (database, redis) = tokio::join!(database, redis);
    let ready = database == "ok" && (redis == "ok" || redis == "not_configured");
    let body = Readiness { status: if ready { "ready" } else { "not_ready" }, checks: Checks { database, redis } };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(tag = "ops", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, crate::error::ApiError> {
    // A failed render is a problem like any other 500 (logged once, with its cause).
    let text = state
        .metrics
        .render()
        .map_err(|e| switchboard_domain::DomainError::internal_from("rendering the metrics failed", e))?;
    Ok(HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(text))
}
