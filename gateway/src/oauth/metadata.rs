//! RFC 8414 metadata of a tenant's authorization server, and Dynamic Client Registration
//! (RFC 7591) of public clients.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use switchboard_domain::sign_in::{GatewayClient, validate_registration};

use super::{Data, oauth_error, random_token};

/// `GET /.well-known/oauth-authorization-server/oauth/{tenant}` (and the two OpenID discovery
/// spellings MCP clients try next). 404 when the tenant has no identity provider: its routes take
/// session tickets only.
pub(super) async fn metadata(gw: Data, path: web::Path<String>) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return oauth_error(StatusCode::NOT_FOUND, "not_found", "no such tenant"),
        Err(r) => return r,
    };
    if issuer.idp.is_none() {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this tenant has no identity provider (PUT /v1/settings/identity-provider); its gateway routes take session tickets",
        );
    }
    let base = &issuer.url;
    HttpResponse::Ok().insert_header(("cache-control", "public, max-age=300")).json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "revocation_endpoint": format!("{base}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "scopes_supported": [],
        "service_documentation": format!("{}/docs/", inner.config.public_url),
    }))
}

/// `POST /oauth/{tenant}/register`: any client may register (RFC 7591 open registration); it
/// gets a public client (PKCE, no secret) with the redirect URIs it named.
pub(super) async fn register(gw: Data, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) if i.idp.is_some() => i,
        Ok(_) => return oauth_error(StatusCode::NOT_FOUND, "not_found", "this tenant does not sign users in"),
        Err(r) => return r,
    };
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", "the body is not JSON"),
    };
    let (client_name, redirect_uris) = match validate_registration(&json) {
        Ok(v) => v,
        Err((error, why)) => return oauth_error(StatusCode::BAD_REQUEST, error, &why),
    };
    let Some(secret) = random_token() else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no randomness");
    };
    let client_id = format!("sbc_{}", secret.get(..32).unwrap_or(&secret));
    let client = GatewayClient { client_id: client_id.clone(), client_name: client_name.clone(), redirect_uris };
    if let Err(e) = inner.runtime.store.tenant(issuer.tenant.id).register_gateway_client(&client).await {
        return super::unavailable(&e);
    }
    tracing::info!(tenant.id = %issuer.tenant.id, client_id, client_name, "mcp client registered");
    HttpResponse::Created().insert_header(("cache-control", "no-store")).json(json!({
        "client_id": client_id,
        "client_id_issued_at": switchboard_domain::clock::now().timestamp(),
        "client_name": client_name,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }))
}
