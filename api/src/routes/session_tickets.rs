//! `/v1/session-tickets`: minting, verifying and revoking the Biscuit tickets of the runtime plane
//! (tenant API key). See `switchboard_domain::ticket` for the format and what holders may append.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::ticket::{self, TicketClaims};
use switchboard_domain::{DomainError, FieldError};
use utoipa_actix_web::service_config::ServiceConfig;

use super::idempotency::{self, Created};
use crate::auth::TenantContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_session_ticket)
        .service(get_session_ticket_public_key)
        .service(revoke_session_ticket)
        .service(attenuate_session_ticket);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionTicketResponse {
    /// `sbt_<tenant id>_<biscuit>`: send it as `Authorization: Bearer …` on the runtime plane.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
    pub user_id: String,
    pub agent_ids: Vec<uuid::Uuid>,
    /// Revoking this id revokes the ticket and every ticket attenuated from it.
    pub revocation_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicKeyResponse {
    pub algorithm: &'static str,
    /// The tenant's Ed25519 public key, hex: holders need it to attenuate tickets offline.
    pub public_key: String,
    pub ticket_format: &'static str,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct CreateSessionTicketRequest {
    /// Your identifier of the end user.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\x00]*$")]
    user_id: String,
    /// The agents the session may act for (1–50).
    #[schema(min_items = 1, max_items = 50)]
    agent_ids: Vec<uuid::Uuid>,
    /// Seconds, 60–86400 (default 3600).
    #[schema(minimum = 60, maximum = 86400)]
    expires_in: Option<u64>,
    /// Who holds the ticket (an orchestrator, a service), recorded in the gateway's audit events;
    /// the user when omitted.
    #[schema(min_length = 1, max_length = 256)]
    subject: Option<String>,
    /// How many times holders may attenuate the ticket (0–8, default 3).
    #[schema(minimum = 0, maximum = 8)]
    max_delegation_depth: Option<u64>,
}

/// Either a ticket or a revocation id.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(untagged)]
pub enum RevokeSessionTicketRequest {
    #[schema(title = "ByTicket")]
    Ticket(RevokeByTicket),
    #[schema(title = "ByRevocationId")]
    RevocationId(RevokeByRevocationId),
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the handler reads the JSON itself")]
pub struct RevokeByTicket {
    /// A ticket to revoke (it and the tickets attenuated from it).
    #[schema(min_length = 1, pattern = "^[^\\x00]*$")]
    ticket: String,
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the handler reads the JSON itself")]
pub struct RevokeByRevocationId {
    /// A revocation id from the mint response (hex).
    #[schema(pattern = "^[0-9a-fA-F]{1,256}$")]
    revocation_id: String,
}

/// Mint a session ticket for an end user and the agents their session may use.
#[utoipa::path(
    tag = "session-tickets",
    request_body = CreateSessionTicketRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses((status = 201, body = SessionTicketResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[post("")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn create_session_ticket(
    state: web::Data<AppState>,
    tenant: TenantContext,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let scope = format!("tenant:{}:create_session_ticket", tenant.tenant_id);
    idempotency::run(&state, &req, tenant.tenant_id, &scope, &body, || async {
        let mint = ticket::validate_mint(&body)?;
        let store = tenant.store(&state.store);
        // An agent the tenant does not have is a 404, like any other id of another tenant.
        for agent in &mint.agents {
            store.get_agent(*agent).await?;
        }
        let expires_at = SystemTime::now() + mint.expires_in;
        let key = store.signing_key().await?;
        let claims = TicketClaims {
            user_id: mint.user_id.clone(),
            agents: mint.agents.clone(),
            expires_at,
            subject: mint.subject.clone(),
            max_delegation_depth: mint.max_delegation_depth,
            audience: None,
        };
        let (ticket, ids) = ticket::mint(tenant.tenant_id, &key, &claims)
            .map_err(|e| DomainError::internal_from("minting a ticket failed", e))?;
        let res = SessionTicketResponse {
            ticket,
            expires_at: DateTime::<Utc>::from(expires_at),
            user_id: mint.user_id,
            agent_ids: mint.agents.iter().map(|a| a.0).collect(),
            revocation_id: ids.first().cloned().unwrap_or_default(),
        };
        Ok(Created { status: StatusCode::CREATED, body: serde_json::to_value(res).unwrap_or_default(), location: None })
    })
    .await
}

/// The tenant's ticket-signing public key.
#[utoipa::path(tag = "session-tickets", responses((status = 200, body = PublicKeyResponse)), security(("api_key" = [])))]
#[get("/public-key")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_session_ticket_public_key(
    state: web::Data<AppState>,
    tenant: TenantContext,
) -> Result<web::Json<PublicKeyResponse>, ApiError> {
    let key = tenant.store(&state.store).signing_key().await?;
    Ok(web::Json(PublicKeyResponse {
        algorithm: "ed25519",
        public_key: key.public_hex(),
        ticket_format: "sbt_<tenant id, 32 hex>_<biscuit, base64url>",
    }))
}

/// Revoke a ticket (and the tickets attenuated from it), by the ticket or a revocation id.
#[utoipa::path(tag = "session-tickets", request_body = RevokeSessionTicketRequest, responses((status = 204)), security(("api_key" = [])))]
#[post("/revoke")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn revoke_session_ticket(
    state: web::Data<AppState>,
    tenant: TenantContext,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let store = tenant.store(&state.store);
    if let Some(map) = body.as_object() {
        let mut errs = switchboard_domain::validate::Errors::default();
        switchboard_domain::validate::reject_unknown(&mut errs, map, "", &["ticket", "revocation_id"], &[]);
        if !errs.0.is_empty() {
            return Err(DomainError::Invalid(errs.0).into());
        }
    }
    let ids = match (body.get("ticket").and_then(|t| t.as_str()), body.get("revocation_id").and_then(|r| r.as_str())) {
        (Some(t), None) => {
            // Only this tenant's tickets: another tenant's is not found here.
            if ticket::tenant_of(t).ok() != Some(tenant.tenant_id) {
                return Err(
                    DomainError::invalid("ticket", "invalid", "this is not a session ticket of this tenant").into()
                );
            }
            let key = store.signing_key().await?;
            let (_, ids) = ticket::open(t, &key.public_hex())
                .map_err(|e| DomainError::invalid("ticket", "invalid", e.to_string()))?;
            // The last block's id: this ticket and what was attenuated from it, not its parent.
            ids.last().cloned().into_iter().collect::<Vec<_>>()
        }
        (None, Some(id)) if !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            vec![id.to_ascii_lowercase()]
        }
        _ => {
            return Err(DomainError::Invalid(vec![
                FieldError::new("ticket", "required", "send either `ticket` or `revocation_id`")
                    .with_hint("the revocation_id is in the mint response"),
            ])
            .into());
        }
    };
    store.revoke_tickets(&tenant.actor(), &ids).await?;
    state.changed(switchboard_worker::changes::Change::Tickets { tenant: tenant.tenant_id });
    Ok(HttpResponse::NoContent().finish())
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the domain validates the JSON itself")]
pub struct AttenuateSessionTicketRequest {
    /// The ticket to narrow (this tenant's).
    #[schema(min_length = 1, max_length = 8192)]
    ticket: String,
    /// Only these tools may be called (names).
    #[schema(min_items = 1, max_items = 100)]
    tools: Option<Vec<BlockName>>,
    /// Only these servers (ids or slugs).
    #[schema(min_items = 1, max_items = 100)]
    servers: Option<Vec<BlockName>>,
    /// Only these agents (ids or slugs).
    #[schema(min_items = 1, max_items = 100)]
    agents: Option<Vec<BlockName>>,
    /// Only these operations (`list`, `call`, `read`, `connect`, `disconnect`, `check`).
    #[schema(min_items = 1, max_items = 100)]
    operations: Option<Vec<BlockName>>,
    /// A shorter life, in seconds from now.
    #[schema(minimum = 1, maximum = 86400)]
    expires_in: Option<u64>,
    /// Argument caps: `{"tool": "db_query", "argument": "max_rows", "max": 100, "default": false}`.
    #[schema(max_items = 16)]
    caps: Option<Vec<switchboard_domain::ticket::delegation::Cap>>,
}

/// A name a block can carry: 1–256 characters, no quotes, backslashes or control characters.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[schema(pattern = "^[^\"\\\\\\x00-\\x1f\\x7f]{1,256}$")]
#[expect(dead_code, reason = "documents the request body")]
pub struct BlockName(String);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttenuatedSessionTicketResponse {
    pub ticket: String,
    /// What the new ticket grants after every block.
    pub grants: switchboard_domain::ticket::delegation::Grants,
    /// This block's revocation id: revoking it revokes the new ticket (and what is narrowed from
    /// it), not its parent.
    pub revocation_id: String,
}

/// Narrow a session ticket by one block, as a holder could offline: fewer tools, servers,
/// agents or operations, a shorter life, argument caps. Refuses a block that would ask for more
/// than the ticket grants.
#[utoipa::path(
    tag = "session-tickets",
    request_body = AttenuateSessionTicketRequest,
    responses((status = 200, body = AttenuatedSessionTicketResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[post("/attenuate")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn attenuate_session_ticket(
    state: web::Data<AppState>,
    tenant: TenantContext,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<AttenuatedSessionTicketResponse>, ApiError> {
    use switchboard_domain::ticket::delegation;
    let (presented, narrowing) = ticket::validate_attenuate(&body, SystemTime::now())?;
    if ticket::tenant_of(&presented).ok() != Some(tenant.tenant_id) {
        return Err(DomainError::invalid("ticket", "invalid", "this is not a session ticket of this tenant").into());
    }
    let key = tenant.store(&state.store).signing_key().await?;
    let (narrowed, grants) =
        delegation::narrow(&presented, &key.public_hex(), &narrowing, SystemTime::now()).map_err(|e| match e {
            delegation::NarrowError::Ticket(switchboard_domain::ticket::TicketError::Internal) => {
                DomainError::internal("narrowing a ticket failed")
            }
            delegation::NarrowError::Ticket(t) => DomainError::invalid("ticket", "invalid", t.to_string()),
            delegation::NarrowError::Invalid(why) => DomainError::invalid("", "invalid", why),
            other => DomainError::invalid("", "not_narrower", other.to_string()),
        })?;
    let (_, ids) = ticket::open(&narrowed, &key.public_hex())?;
    Ok(web::Json(AttenuatedSessionTicketResponse {
        ticket: narrowed,
        grants,
        revocation_id: ids.last().cloned().unwrap_or_default(),
    }))
}
