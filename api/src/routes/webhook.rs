//! `/v1/webhook`: where the tenant's connection events are delivered (tenant API key). Deliveries
//! are signed in the Standard Webhooks format with a `whsec_` secret that is shown in full only
//! when it is created or rotated.

use actix_web::{HttpResponse, delete, get, put, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::DomainError;
use switchboard_domain::store::Webhook;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::TenantContext;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_webhook).service(put_webhook).service(delete_webhook);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResponse {
    pub url: String,
    /// The signing secret (`whsec_…`) in full when it was just created or rotated — store it, it
    /// is not shown again — else `{"set": true, "last4": "…"}`.
    #[schema(schema_with = secret_schema)]
    pub secret: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

/// The secret in full (a string) or its hint (`{"set": true, "last4": "…"}`).
fn secret_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^whsec_"))).item(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("set", ObjectBuilder::new().schema_type(Type::Boolean))
            .property("last4", ObjectBuilder::new().schema_type(Type::String))
            .required("set"),
    )
}

fn response(w: &Webhook, show: bool) -> WebhookResponse {
    let s = w.secret.expose();
    WebhookResponse {
        url: w.url.clone(),
        secret: if show {
            serde_json::Value::String(s.to_owned())
        } else {
            serde_json::json!({"set": true, "last4": s.get(s.len().saturating_sub(4)..).unwrap_or_default()})
        },
        updated_at: w.updated_at,
    }
}

#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the request body; the handler validates the JSON itself")]
pub struct WebhookRequest {
    /// An https URL (http only for loopback in development); it receives a POST per event.
    #[schema(
        max_length = 2048,
        pattern = "^https://([A-Za-z0-9-]+\\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
    )]
    url: String,
    /// Replace the signing secret (the new one is returned once).
    rotate_secret: Option<bool>,
}

/// The tenant's webhook.
#[utoipa::path(tag = "webhook", responses((status = 200, body = WebhookResponse)), security(("api_key" = [])))]
#[get("/v1/webhook")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn get_webhook(
    state: web::Data<AppState>,
    tenant: TenantContext,
) -> Result<web::Json<WebhookResponse>, ApiError> {
    let w = tenant.store(&state.store).webhook().await?;
    w.map(|w| web::Json(response(&w, false)))
        .ok_or_else(|| DomainError::NotFound { kind: "webhook", id: "(none set)".into() }.into())
}

/// Set the webhook URL (a new webhook gets a signing secret, returned once).
#[utoipa::path(
    tag = "webhook",
    request_body = WebhookRequest,
    responses((status = 200, body = WebhookResponse), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
#[put("/v1/webhook")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn put_webhook(
    state: web::Data<AppState>,
    tenant: TenantContext,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<WebhookResponse>, ApiError> {
    use switchboard_domain::validate::{self, Errors};
    let mut errs = Errors::default();
    let mut url = None;
    let mut rotate = false;
    if let Some(map) = validate::object(&mut errs, "", &body) {
        validate::reject_unknown(&mut errs, map, "", &["url", "rotate_secret"], &[]);
        match map.get("url").and_then(serde_json::Value::as_str) {
            Some(raw) => match validate::url(state.settings.policy(), "url", raw) {
                Ok(u) => url = Some(u.to_string()),
                Err(e) => errs.push(e),
            },
            None => errs.required("url", "the URL that receives events"),
        }
        match map.get("rotate_secret") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Bool(b)) => rotate = *b,
            Some(_) => errs.push(switchboard_domain::FieldError::new(
                "rotate_secret",
                "invalid_type",
                "rotate_secret must be a boolean",
            )),
        }
    }
    let url = errs.finish(url)?.unwrap_or_default();
    let (w, fresh) = tenant.store(&state.store).put_webhook(&url, rotate).await?;
    Ok(web::Json(response(&w, fresh)))
}

/// Stop delivering events (they stay in the outbox).
#[utoipa::path(tag = "webhook", responses((status = 204)), security(("api_key" = [])))]
#[delete("/v1/webhook")]
#[tracing::instrument(skip_all, fields(tenant.id = %tenant.tenant_id))]
pub async fn delete_webhook(state: web::Data<AppState>, tenant: TenantContext) -> Result<HttpResponse, ApiError> {
    if tenant.store(&state.store).delete_webhook().await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(DomainError::NotFound { kind: "webhook", id: "(none set)".into() }.into())
    }
}
