//! `/v1/users/{user_id}`: what Switchboard holds about one end user, and its deletion.

use actix_web::{HttpResponse, delete, web};
use serde::Serialize;
use switchboard_domain::DomainError;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(delete_user_data);
}

/// What deleting a user's data did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDeletionResponse {
    pub user_id: String,
    /// Grants revoked now; their tokens are revoked at the providers by background jobs.
    pub grants_revoked: usize,
    /// Connection rows deleted, over every agent and server.
    pub connections_deleted: u64,
}

/// Delete an end user's data: their grants are revoked (unusable at once; tokens revoked at the
/// providers in the background), then their connections, pending consent flows and issuance
/// records are deleted. The user may connect again later, as a new user would.
#[utoipa::path(tag = "connections", params(("user_id" = String, Path, description = "your identifier of the end user (the session tickets' user_id)")), responses((status = 200, body = UserDeletionResponse)), security(("api_key" = [])))]
#[delete("/v1/users/{user_id}")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn delete_user_data(
    state: web::Data<AppState>,
    tenant: TenantContext,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user_id = user_id.into_inner();
    if user_id.is_empty() || user_id.len() > 256 {
        return Err(DomainError::invalid("user_id", "invalid", "user_id must be 1 to 256 characters").into());
    }
    let done = tenant.store(&state.store).delete_user_data(&tenant.actor(), &user_id).await?;
    // The gateway's views drop the user's tokens and statuses before this answers.
    state.changed(switchboard_worker::changes::Change::Grants { tenant: tenant.tenant_id });
    // And the access tokens of the user's MCP clients (revoked with their families).
    state.changed(switchboard_worker::changes::Change::Tickets { tenant: tenant.tenant_id });
    state.runtime.wakeups.wake();
    Ok(HttpResponse::Ok().json(UserDeletionResponse {
        user_id,
        grants_revoked: done.grants_revoked,
        connections_deleted: done.connections_deleted,
    }))
}
