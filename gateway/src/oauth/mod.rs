//! The gateway as an OAuth 2.1 authorization server, one per tenant, issuer
//! `{public_url}/oauth/{tenant}` — so that a stock MCP client, pointed at a gateway URL, finds
//! its way in through the MCP authorization spec alone: the route's 401 names its protected
//! resource metadata, which names this issuer.
//!
//! - `metadata.rs`: RFC 8414 metadata and Dynamic Client Registration (RFC 7591);
//! - `flow.rs`: `authorize` → the tenant's identity provider → `callback` (ID token verified) →
//!   Switchboard's consent page → the client's redirect URI with `code`, `state` and `iss`;
//! - `connect.rs`: a gateway connect link opened by a user of a tenant that signs users in: the
//!   same sign-in proves the user is the one the link was made for (the MCP spec's phishing rule)
//!   without the tenant's app;
//! - `tokens.rs`: the token endpoint (authorization code with PKCE S256, refresh with rotation
//!   and reuse detection) and revocation (RFC 7009).
//!
//! The access token is a session ticket for (user, agent) whose audience is the RFC 8707
//! `resource` the client asked for: everything the gateway enforces on tickets applies to it, and
//! it is refused at every other URL. What travels through the browser between the steps (the
//! pending request, the sign-in session, the authorization code) is sealed with the deployment's
//! key (AES-256-GCM, bound to the tenant) and short-lived; what must be single-use (a code) or
//! revocable (a refresh token's family) is recorded in the database.

mod connect;
mod flow;
mod metadata;
mod tokens;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use switchboard_domain::sign_in::{GatewayClient, IdentityProvider};
use switchboard_domain::tenant::Tenant;
use switchboard_domain::{AgentId, TenantId};

use crate::pages::html_escape;
use crate::{Gateway, Inner};

/// How long a sign-in lasts in the browser (the user is not asked again within it).
const SIGN_IN_LIFE: i64 = 8 * 3600;
/// How long the steps between `authorize` and the consent decision may take.
const PENDING_LIFE: i64 = 10 * 60;
/// How long an authorization code lives.
const CODE_LIFE: i64 = 60;
/// An access token's life.
const ACCESS_LIFE: u64 = 3600;
/// A refresh token's life (each rotation starts a new one).
const REFRESH_LIFE_DAYS: i64 = 30;
/// The sign-in session cookie and the cookie binding an authorization to its browser.
const SIGN_IN_COOKIE: &str = "switchboard_sign_in";
const FLOW_COOKIE: &str = "switchboard_flow";

/// An authorization request between `authorize` and the consent decision.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    client_name: String,
    redirect_uri: String,
    /// The client's `state`, returned as it came.
    state: Option<String>,
    challenge: String,
    resource: String,
    agent: AgentId,
    agent_name: String,
    server_name: String,
    /// The identity provider's nonce and PKCE verifier for this sign-in.
    nonce: String,
    verifier: String,
    /// The value of the flow cookie set in the browser that started it.
    browser: String,
    /// Known once the user signed in.
    user: Option<String>,
    expires_at: i64,
    /// A connect link the user opened (`sbx_…`): after signing in, the browser goes on to it
    /// instead of a client's consent.
    #[serde(default)]
    connect: Option<String>,
}

/// A signed-in browser.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SignIn {
    user: String,
    expires_at: i64,
    /// The provider and claim that named the user ([`provider_id`]): a sign-in outlives neither.
    provider: String,
}

/// What a sign-in is bound to: the provider's issuer and the claim naming users.
fn provider_id(idp: &IdentityProvider) -> String {
    format!("{} {}", idp.issuer, idp.user_claim)
}

/// The cookie binding one authorization to the browser that started it (one per flow, so that
/// several at once in one browser do not undo each other).
fn flow_cookie(browser: &str) -> String {
    let digest = switchboard_domain::crypto::hex_digest(browser.as_bytes());
    format!("{FLOW_COOKIE}_{}", digest.get(..16).unwrap_or(&digest))
}

/// An authorization code's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: String,
    agent: AgentId,
    user: String,
    expires_at: i64,
    /// Makes every code distinct (and its digest unique).
    nonce: String,
}

const PENDING_PREFIX: &str = "sbp_";
const SIGN_IN_PREFIX: &str = "sbsi_";
const CODE_PREFIX: &str = "sbac_";
const REFRESH_PREFIX: &str = "sbrt_";

fn now() -> i64 {
    switchboard_domain::clock::now().timestamp()
}

fn random_token() -> Option<String> {
    use base64::Engine as _;
    let bytes = switchboard_domain::crypto::random_bytes::<32>().ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The tenant an `/oauth/{tenant}` URL names, with its identity provider.
struct Issuer {
    tenant: Tenant,
    idp: Option<IdentityProvider>,
    url: String,
}

impl Inner {
    pub(crate) fn issuer_url(&self, segment: &str) -> String {
        format!("{}/oauth/{segment}", self.config.public_url)
    }

    /// `Ok(None)`: no such tenant.
    async fn issuer(&self, segment: &str) -> Result<Option<Issuer>, HttpResponse> {
        let store = &self.runtime.store;
        let tenant = match store.admin().tenant_by_segment(segment).await {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => return Err(unavailable(&e)),
        };
        let idp = store.tenant(tenant.id).identity_provider().await.map_err(|e| unavailable(&e))?;
        Ok(Some(Issuer { url: self.issuer_url(segment), tenant, idp }))
    }

    /// Whether `segment`'s tenant signs users in itself (its routes' metadata then names it).
    pub(crate) async fn signs_in(&self, segment: &str) -> bool {
        matches!(self.issuer(segment).await, Ok(Some(Issuer { idp: Some(_), .. })))
    }

    /// A client by its id: one registered by DCR, or — an `https` URL (`http` on loopback when
    /// private networks are allowed) — a Client ID Metadata Document, fetched through the guarded
    /// client and held to the spec: `client_id` equal to its URL, redirect URIs that are allowed.
    /// A document is kept five minutes (a client that changes it waits that long).
    async fn client(&self, tenant: TenantId, client_id: &str) -> Result<Option<GatewayClient>, String> {
        if !(client_id.starts_with("https://") || client_id.starts_with("http://")) {
            return self
                .runtime
                .store
                .tenant(tenant)
                .gateway_client(client_id)
                .await
                .map_err(|e| switchboard_domain::error::chain(&e));
        }
        if let Some(known) = self.views.client_documents.get(&client_id.to_owned()) {
            return Ok(Some((*known).clone()));
        }
        let url = url::Url::parse(client_id).map_err(|_| "the client_id is not a URL".to_owned())?;
        if url.path() == "/" || url.fragment().is_some() {
            return Err("a client ID metadata document's URL needs a path and no fragment".into());
        }
        let fetched = self
            .runtime
            .fetcher
            .get(&url, switchboard_discovery::http::headers(&[("accept", "application/json")]))
            .await
            .map_err(|e| format!("the client's metadata document could not be fetched: {e}"))?;
        if !fetched.status.is_success() {
            return Err(format!("the client's metadata document answered {}", fetched.status.as_u16()));
        }
        let doc = fetched.json().ok_or("the client's metadata document is not JSON")?;
        if doc.get("client_id").and_then(serde_json::Value::as_str) != Some(client_id) {
            return Err("the client's metadata document names another client_id".into());
        }
        let (client_name, redirect_uris) =
            switchboard_domain::sign_in::validate_registration(&doc).map_err(|(_, why)| why)?;
        let client = GatewayClient { client_id: client_id.to_owned(), client_name, redirect_uris };
        self.views.client_documents.put(client_id.to_owned(), std::sync::Arc::new(client.clone()));
        Ok(Some(client))
    }

    fn seal<T: Serialize>(&self, tenant: TenantId, column: &str, prefix: &str, v: &T) -> Option<String> {
        crate::connect::seal_json(self.runtime.store.envelope(), tenant, column, prefix, v)
    }

    fn open<T: for<'de> Deserialize<'de>>(&self, tenant: TenantId, column: &str, prefix: &str, s: &str) -> Option<T> {
        crate::connect::open_json::<T>(self.runtime.store.envelope(), column, prefix, s)
            .filter(|(t, _)| *t == tenant)
            .map(|(_, v)| v)
    }

    /// The browser's sign-in for `tenant`, if it has a live one by the provider configured now.
    fn signed_in(&self, req: &HttpRequest, tenant: TenantId, idp: &IdentityProvider) -> Option<SignIn> {
        let cookie = req.cookie(SIGN_IN_COOKIE)?;
        self.open::<SignIn>(tenant, "sign_in", SIGN_IN_PREFIX, cookie.value())
            .filter(|s| s.expires_at > now() && s.provider == provider_id(idp))
    }

    fn secure_cookies(&self) -> bool {
        self.config.public_url.starts_with("https://")
    }

    fn cookie(
        &self,
        segment: &str,
        name: impl Into<String>,
        value: String,
        max_age: i64,
    ) -> actix_web::cookie::Cookie<'static> {
        let name: String = name.into();
        actix_web::cookie::Cookie::build(name, value)
            .path(format!("/oauth/{segment}"))
            .http_only(true)
            .secure(self.secure_cookies())
            .same_site(actix_web::cookie::SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::seconds(max_age))
            .finish()
    }
}

fn unavailable(e: &switchboard_domain::DomainError) -> HttpResponse {
    tracing::error!(error = %switchboard_domain::error::chain(e), "authorization server lookup failed");
    oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the database could not be reached; try again",
    )
}

/// An RFC 6749 §5.2 error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({"error": error, "error_description": description}))
}

/// A page for the person in the browser, when the client cannot be told (RFC 6749 §4.1.2.1: an
/// unknown client or redirect URI is never redirected to).
fn page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    let esc = html_escape;
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-store"))
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p id=\"message\">{m}</p></body></html>",
            t = esc(title),
            m = esc(text)
        ))
}

/// Sends the browser back to the client with `pairs` and the issuer (RFC 9207).
fn back_to_client(redirect_uri: &str, pairs: &[(&str, &str)], issuer: &str) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return page(StatusCode::BAD_REQUEST, "Sign-in failed", "the client's redirect URI is not valid");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        q.append_pair("iss", issuer);
    }
    HttpResponse::Found()
        .insert_header(("location", url.to_string()))
        .insert_header(("cache-control", "no-store"))
        .finish()
}

/// Where the browser goes on to, once signed in, for connect link `request` (`connect.rs`).
fn to_connect(inner: &Inner, segment: &str, request: &str) -> HttpResponse {
    let url = format!("{}/oauth/{segment}/connect?request={request}", inner.config.public_url);
    HttpResponse::Found().insert_header(("location", url)).insert_header(("cache-control", "no-store")).finish()
}

/// Registers the authorization server's routes.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/.well-known/oauth-authorization-server/oauth/{tenant}")
            .route(web::get().to(metadata::metadata)),
    )
    .service(web::resource("/.well-known/openid-configuration/oauth/{tenant}").route(web::get().to(metadata::metadata)))
    .service(web::resource("/oauth/{tenant}/.well-known/openid-configuration").route(web::get().to(metadata::metadata)))
    .service(web::resource("/oauth/{tenant}/register").route(web::post().to(metadata::register)))
    .service(web::resource("/oauth/{tenant}/authorize").route(web::get().to(flow::authorize)))
    .service(web::resource("/oauth/{tenant}/callback").route(web::get().to(flow::callback)))
    .service(
        web::resource("/oauth/{tenant}/consent")
            .route(web::get().to(flow::consent_page))
            .route(web::post().to(flow::consent_decision)),
    )
    .service(web::resource("/oauth/{tenant}/connect").route(web::get().to(connect::connect)))
    .service(web::resource("/oauth/{tenant}/token").route(web::post().to(tokens::token)))
    .service(web::resource("/oauth/{tenant}/revoke").route(web::post().to(tokens::revoke)));
}

type Data = web::Data<Gateway>;
