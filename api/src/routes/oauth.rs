//! Public OAuth documents Switchboard serves to authorization servers.

use actix_web::{HttpResponse, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(client_metadata_document);
}

/// Switchboard's OAuth Client ID Metadata Document: its `client_id` is this document's URL
/// (`${SWITCHBOARD_PUBLIC_URL}/oauth/client-metadata.json`, https only).
#[utoipa::path(tag = "oauth", responses((status = 200, content_type = "application/json", body = Object), (status = 404)))]
#[get("/oauth/client-metadata.json")]
pub async fn client_metadata_document(state: web::Data<AppState>) -> HttpResponse {
    match state.runtime.servers.client_metadata_url() {
        Some(client_id) => HttpResponse::Ok().insert_header(("cache-control", "public, max-age=3600")).json(
            switchboard_discovery::register::client_metadata_document(
                &client_id,
                &state.runtime.servers.redirect_uri(),
            ),
        ),
        // An http public URL cannot host a CIMD client_id: there is no document to serve.
        None => actix_web::ResponseError::error_response(&crate::error::ApiError::from(
            switchboard_domain::DomainError::NotFound {
                kind: "client metadata document (SWITCHBOARD_PUBLIC_URL is not https)",
                id: "/oauth/client-metadata.json".into(),
            },
        )),
    }
}
