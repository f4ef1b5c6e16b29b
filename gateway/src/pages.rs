//! The gateway's pages: a route's protected resource metadata and the connect page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::answer::{Segments, json_response};
use crate::{Gateway, connect};

/// Text made safe for HTML content and attribute values.
#[must_use]
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `GET /.well-known/oauth-protected-resource/mcp/{tenant}/{agent}/{server}` (RFC 9728 §3.1:
/// the well-known segment inserted before the route's path).
///
/// A tenant with an identity provider names its own authorization server
/// (`{public_url}/oauth/{tenant}`), where any MCP client signs its user in; without one the list
/// is empty and `switchboard.sign_in` says so: the route takes session tickets only.
pub(crate) async fn resource_metadata(gw: web::Data<Gateway>, path: Segments) -> HttpResponse {
    metadata_document(&gw.inner, &path).await
}

/// The protected resource metadata of a route, or — with an empty server segment — of an agent
/// endpoint (`agent.rs`).
pub(crate) async fn metadata_document(inner: &crate::Inner, path: &(String, String, String)) -> HttpResponse {
    let signs_in = inner.signs_in(&path.0).await;
    let servers: Vec<String> = if signs_in { vec![inner.issuer_url(&path.0)] } else { vec![] };
    json_response(
        200,
        &json!({
            "resource": inner.route_url(path),
            "authorization_servers": servers,
            "bearer_methods_supported": ["header"],
            "resource_name": if path.2.is_empty() { "Switchboard MCP gateway (agent endpoint)" } else { "Switchboard MCP gateway" },
            "resource_documentation": format!("{}/docs/", inner.config.public_url),
            "switchboard": {
                "credential": if signs_in { "oauth_or_session_ticket" } else { "session_ticket" },
                "sign_in": if signs_in { "configured" } else { "not configured: the tenant has no identity provider (PUT /v1/settings/identity-provider)" },
                "mint": format!("{}/v1/session-tickets", inner.config.public_url),
            },
        }),
    )
}

/// `GET /connect/{request}`: what a user who opened a connect link sees. It starts nothing: the
/// tenant's app confirms the request with the user's ticket and sends the browser on.
///
/// For a tenant that signs its users in (an identity provider), the browser goes on to
/// `/oauth/{tenant}/connect`, where the user's own sign-in proves who opened the link.
pub(crate) async fn connect_page(gw: web::Data<Gateway>, path: web::Path<String>) -> HttpResponse {
    let inner = &gw.inner;
    let envelope = inner.runtime.store.envelope();
    if let Ok(request) = connect::open(envelope, &path)
        && let Ok(key) = inner.tenant_key(request.tenant).await
        && inner.signs_in(&key.slug).await
    {
        let url = format!("{}/oauth/{}/connect?request={}", inner.config.public_url, key.slug, path.as_str());
        return HttpResponse::Found()
            .insert_header(("location", url))
            .insert_header(("cache-control", "no-store"))
            .finish();
    }
    let (status, title, text) = match connect::open(envelope, &path) {
        Ok(_) => (
            StatusCode::OK,
            "Connect from your app",
            "This link connects a service for your agent. For your safety it only works from the app you use the agent in: go back to it and confirm there.".to_owned(),
        ),
        Err(e) => (StatusCode::BAD_REQUEST, "Link not valid", e.to_string()),
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("content-security-policy", "default-src 'none'; frame-ancestors 'none'"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
        ))
}
