//! `/v1/audit-events`: the tenant's audit trail (tenant API key).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_domain::audit::{AuditEvent, AuditFilter};
use switchboard_domain::page::PageRequest;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_audit_events);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEventResponse {
    pub id: uuid::Uuid,
    /// `api_key:<id>`, `admin` or `system`.
    pub actor: String,
    /// e.g. `mcp_server.created`, `agent.mcp_server_attached`, `api_key.deleted`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// Names, slugs and ids involved; never a secret.
    #[schema(value_type = Object)]
    pub data: Box<serde_json::value::RawValue>,
    pub created_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.0,
            actor: e.actor,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            data: e.data,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEventList {
    pub data: Vec<AuditEventResponse>,
    /// Pass as `cursor` for older events; null on the last page.
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=&action=&target_id=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
    /// An exact action (`mcp_server.updated`) or a prefix ending in `.` (`mcp_server.`).
    pub action: Option<String>,
    /// Only events about this resource id.
    pub target_id: Option<String>,
}

/// List the tenant's audit events, newest first.
#[utoipa::path(tag = "audit", params(AuditQuery), responses((status = 200, body = AuditEventList)), security(("api_key" = [])))]
#[get("/v1/audit-events")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn list_audit_events(
    state: web::Data<AppState>,
    tenant: TenantContext,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<AuditEventList>, ApiError> {
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = AuditFilter {
        action: query.action.clone().filter(|a| !a.is_empty()),
        target_id: query.target_id.clone().filter(|t| !t.is_empty()),
    };
    let page = tenant.store(&state.store).list_audit_events(page, &filter).await?;
    Ok(web::Json(AuditEventList {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}
