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
    match state.servers.client_metadata_url() {
        Some(client_id) => HttpResponse::Ok()
            .insert_header(("cache-control", "public, max-age=3600"))
            .json(switchboard_discovery::register::client_metadata_document(&client_id, &state.servers.redirect_uri())),
        // An http public URL cannot host a CIMD client_id; say so rather than serve a useless one.
        None => HttpResponse::NotFound()
            .content_type("application/problem+json")
            .body(r#"{"type":"urn:switchboard:problem:not_found","title":"Not Found","status":404,"code":"not_found","detail":"no client metadata document: SWITCHBOARD_PUBLIC_URL is not https"}"#),
    }
}
