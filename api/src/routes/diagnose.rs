//! `POST /v1/mcp-servers/{id}/diagnose` and `GET /v1/mcp-servers/{id}/health`: troubleshooting
//! as data for a tenant's admin (tenant API key). The work is the worker's
//! ([`switchboard_worker::diagnose`], [`switchboard_worker::health`]); this maps it.

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::finding::Finding;
use switchboard_domain::health::HealthReport;
use switchboard_domain::{AgentId, DomainError, FieldError, McpServerId};
use switchboard_worker::diagnose::ConnectionTarget;

use super::parse_id;
use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

/// What `diagnose` found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiagnoseResponse {
    pub server_id: uuid::Uuid,
    pub checked_at: DateTime<Utc>,
    /// Worst first; empty when all is well.
    pub findings: Vec<Finding>,
    /// The discovery run for it: every probe (URL, status, milliseconds) in `steps`.
    #[schema(value_type = Object)]
    pub discovery_result: switchboard_discovery::DiscoveryResult,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the handler reads the JSON itself")]
pub struct DiagnoseRequest {
    /// With `agent_id`: also diagnose this user's connection through that agent (its grant,
    /// and a live check with its credentials).
    user_id: Option<String>,
    agent_id: Option<uuid::Uuid>,
}

/// Diagnose a server: discovery again, compared with the stored configuration and client
/// registration; the endpoint and the provider probed (is the client known, the redirect URI
/// registered, the resource accepted); its grants and the last hour of traffic read. Nothing is
/// saved. With `user_id` and `agent_id`, that user's connection is diagnosed too.
#[utoipa::path(
    tag = "mcp-servers",
    params(("id" = uuid::Uuid, Path)),
    request_body(content = Option<DiagnoseRequest>),
    responses((status = 200, body = DiagnoseResponse)),
    security(("api_key" = []))
)]
#[post("/{id}/diagnose")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn diagnose_mcp_server(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<DiagnoseResponse>, ApiError> {
    let id: McpServerId = parse_id("mcp server", &id)?;
    let target = target(super::optional_json(&body)?.as_ref())?;
    let server = tenant.store(&state.store).get_mcp_server(id).await?;
    if let Some(t) = &target {
        // A user's connection through an agent of this tenant only. The server exists, so an
        // unknown agent is the body's fault: a 422 naming the field, not a 404 of the server.
        match tenant.store(&state.store).get_agent(t.agent_id).await {
            Ok(_) => {}
            Err(DomainError::NotFound { .. }) => {
                let detail = format!("agent `{}` not found: agent_id must be one of this tenant's agents", t.agent_id);
                return Err(DomainError::invalid("agent_id", "not_found", detail).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let d = state.runtime.diagnose(tenant.tenant_id, &server, state.settings.policy(), target).await?;
    Ok(web::Json(DiagnoseResponse {
        server_id: d.server_id.0,
        checked_at: d.checked_at,
        findings: d.findings,
        discovery_result: d.discovery_result,
    }))
}

/// The optional body: nothing, or both `user_id` and `agent_id`.
fn target(body: Option<&serde_json::Value>) -> Result<Option<ConnectionTarget>, ApiError> {
    let Some(body) = body else { return Ok(None) };
    let mut errs = switchboard_domain::validate::Errors::default();
    let Some(map) = body.as_object() else {
        return Err(DomainError::invalid("", "invalid_type", "the body must be a JSON object").into());
    };
    switchboard_domain::validate::reject_unknown(&mut errs, map, "", &["user_id", "agent_id"], &[]);
    let user = map.get("user_id").filter(|v| !v.is_null());
    let agent = map.get("agent_id").filter(|v| !v.is_null());
    let user = match user {
        None => None,
        Some(serde_json::Value::String(u)) if !u.trim().is_empty() && u.len() <= 255 => Some(u.clone()),
        Some(_) => {
            errs.push(FieldError::new(
                "user_id",
                "invalid",
                "user_id must be a non-empty string of at most 255 characters",
            ));
            None
        }
    };
    let agent = match agent {
        None => None,
        Some(serde_json::Value::String(a)) => match uuid::Uuid::parse_str(a) {
            Ok(u) => Some(AgentId::from(u)),
            Err(_) => {
                errs.push(FieldError::new("agent_id", "invalid", "agent_id must be an agent's id (a UUID)"));
                None
            }
        },
        Some(_) => {
            errs.push(FieldError::new("agent_id", "invalid_type", "agent_id must be a string"));
            None
        }
    };
    if errs.0.is_empty() && user.is_some() != agent.is_some() {
        let missing = if user.is_none() { "user_id" } else { "agent_id" };
        errs.push(
            FieldError::new(missing, "required", "a connection is named by user_id and agent_id together")
                .with_hint("send both to diagnose that user's connection, or neither for the server alone"),
        );
    }
    if !errs.0.is_empty() {
        return Err(DomainError::Invalid(errs.0).into());
    }
    Ok(user.zip(agent).map(|(user_id, agent_id)| ConnectionTarget { user_id, agent_id }))
}

/// A server's health from real traffic: calls through the gateway and runtime checks over the
/// last hour and day, by outcome (`ok` or a finding code), p50/p95 latency, timeouts, and the
/// last failures. Counted per minute in each process and written every 5 seconds.
#[utoipa::path(
    tag = "mcp-servers",
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = HealthReport)),
    security(("api_key" = []))
)]
#[get("/{id}/health")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_mcp_server_health(
    state: web::Data<AppState>,
    tenant: TenantContext,
    id: web::Path<String>,
) -> Result<web::Json<HealthReport>, ApiError> {
    let id: McpServerId = parse_id("mcp server", &id)?;
    tenant.store(&state.store).get_mcp_server(id).await?;
    Ok(web::Json(state.runtime.health.report(tenant.tenant_id, id).await?))
}
