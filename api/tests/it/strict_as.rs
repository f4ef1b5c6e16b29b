//! A strict authorization server for refresh and revocation tests: rotation on every refresh,
//! reuse detection (presenting a spent refresh token revokes its whole family, unless a grace
//! window is on), every presentation counted, a 20 ms answer to widen races, and scripted faults
//! (statuses with `Retry-After`, delays past the client's deadline, garbage 200s) for what a
//! real provider cannot be made to do.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use switchboard_domain::connection::{AuthFlow, GrantKey, TokenSet};
use switchboard_domain::crypto::Secret;
use switchboard_domain::store::TenantStore;

#[derive(Default)]
pub struct Family {
    pub presentations: u32,
    pub revoked: bool,
    pub current: String,
}

/// A scripted answer of the token or revocation endpoint, taken before the normal behaviour.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This status, with `Retry-After` when given.
    Status(u16, Option<u64>),
    /// Answer only after this long (the client's deadline should cut it off).
    Delay(Duration),
    /// A 200 that is not a token response.
    Garbage(&'static str),
}

#[derive(Default)]
pub struct Provider {
    /// refresh token → (family, spent)
    pub tokens: HashMap<String, (usize, bool)>,
    pub families: Vec<Family>,
    pub reuse: u32,
    /// Scripted answers of `/token`, first in first out.
    pub token_faults: VecDeque<Fault>,
    /// Scripted answers of `/revoke`.
    pub revoke_faults: VecDeque<Fault>,
    /// Every revocation request that was answered 200: (token_type_hint, token).
    pub revoked: Vec<(String, String)>,
    /// Accept a spent refresh token once more (a provider's reuse grace window) instead of
    /// revoking its family.
    pub grace: bool,
    /// The `expires_in` of issued access tokens (3600 when unset).
    pub expires_in: Option<u64>,
    /// The authorization server the protected resource metadata names (this provider when unset).
    pub authorization_server: Option<String>,
    /// Spent refresh tokens accepted again inside the grace window.
    pub grace_uses: u32,
}

async fn scripted(fault: Option<Fault>) -> Option<HttpResponse> {
    match fault? {
        Fault::Status(status, retry_after) => {
            let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"));
            if let Some(r) = retry_after {
                res.insert_header(("retry-after", r.to_string()));
            }
            Some(res.json(json!({"error": if status == 429 { "slow_down" } else { "temporarily_unavailable" }})))
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::Garbage(body) => Some(HttpResponse::Ok().content_type("application/json").body(body)),
    }
}

/// Rotates `presented`; `None` when it is unknown, spent (outside grace) or its family revoked.
fn rotate(p: &mut Provider, presented: &str) -> Option<(String, String)> {
    let &(family, spent) = p.tokens.get(presented)?;
    if p.families[family].revoked || (spent && !p.grace) {
        // Reuse: the whole family dies (RFC 9700 §4.14).
        p.reuse += 1;
        p.families[family].revoked = true;
        return None;
    }
    if spent {
        p.grace_uses += 1;
    }
    p.tokens.insert(presented.to_owned(), (family, true));
    let f = &mut p.families[family];
    f.presentations += 1;
    let next = format!("rt-{family}-{}", f.presentations);
    f.current = next.clone();
    let access = format!("at-{family}-{}", f.presentations);
    p.tokens.insert(next.clone(), (family, false));
    Some((access, next))
}

/// The strict authorization server (rotation, reuse detection, a 20 ms answer, scripted faults)
/// at `/token` and `/revoke`, and — so that discovery finds it — an MCP endpoint at `/mcp` that
/// answers 401 with protected resource metadata naming this server, and its RFC 8414 metadata.
pub fn start_provider(state: Arc<Mutex<Provider>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let b = base.clone();
    let server = HttpServer::new(move || {
        let (token_state, revoke_state, b) = (state.clone(), state.clone(), b.clone());
        let (prm_base, meta_base, mcp_base) = (b.clone(), b.clone(), b.clone());
        let prm_state = state.clone();
        App::new()
            .route(
                "/token",
                web::post().to(move |form: web::Form<HashMap<String, String>>| {
                    let state = token_state.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let fault = state.lock().expect("provider").token_faults.pop_front();
                        if let Some(res) = scripted(fault).await {
                            return res;
                        }
                        let presented = form.get("refresh_token").cloned().unwrap_or_default();
                        let mut provider = state.lock().expect("provider");
                        let expires_in = provider.expires_in.unwrap_or(3600);
                        match rotate(&mut provider, &presented) {
                            Some((access, next)) => HttpResponse::Ok().json(json!({"access_token": access,
                                "token_type": "Bearer", "expires_in": expires_in, "refresh_token": next})),
                            None => HttpResponse::BadRequest().json(json!({"error": "invalid_grant"})),
                        }
                    }
                }),
            )
            .route(
                "/revoke",
                web::post().to(move |form: web::Form<HashMap<String, String>>| {
                    let state = revoke_state.clone();
                    async move {
                        let fault = state.lock().expect("provider").revoke_faults.pop_front();
                        if let Some(res) = scripted(fault).await {
                            return res;
                        }
                        let hint = form.get("token_type_hint").cloned().unwrap_or_default();
                        let token = form.get("token").cloned().unwrap_or_default();
                        state.lock().expect("provider").revoked.push((hint, token));
                        HttpResponse::Ok().finish()
                    }
                }),
            )
            .route(
                "/mcp",
                web::post().to(move || {
                    let b = mcp_base.clone();
                    async move {
                        HttpResponse::Unauthorized()
                            .insert_header((
                                "www-authenticate",
                                format!("Bearer resource_metadata=\"{b}/.well-known/oauth-protected-resource/mcp\""),
                            ))
                            .finish()
                    }
                }),
            )
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                web::get().to(move || {
                    let b = prm_base.clone();
                    let named = prm_state.lock().expect("provider").authorization_server.clone();
                    async move {
                        let server = named.unwrap_or_else(|| b.clone());
                        HttpResponse::Ok().json(json!({"resource": format!("{b}/mcp"), "authorization_servers": [server]}))
                    }
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                web::get().to(move || {
                    let b = meta_base.clone();
                    async move {
                        HttpResponse::Ok().json(json!({"issuer": b, "authorization_endpoint": format!("{b}/authorize"),
                            "token_endpoint": format!("{b}/token"), "revocation_endpoint": format!("{b}/revoke"),
                            "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": ["none"],
                            "grant_types_supported": ["authorization_code", "refresh_token"], "response_types_supported": ["code"]}))
                    }
                }),
            )
    })
    .workers(2)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    base
}

/// Seeds grant `family` with refresh token `rt-<family>-0` whose access token expires in `life`,
/// known to the provider.
pub async fn seed_grant(
    store: &TenantStore<'_>,
    provider: &Arc<Mutex<Provider>>,
    as_base: &str,
    key: GrantKey,
    family: usize,
    life: chrono::TimeDelta,
) {
    let rt = format!("rt-{family}-0");
    {
        let mut p = provider.lock().expect("provider");
        p.tokens.insert(rt.clone(), (family, false));
        if p.families.len() <= family {
            p.families.resize_with(family + 1, Family::default);
        }
        p.families[family].current = rt.clone();
    }
    let flow = AuthFlow {
        key,
        verifier: Secret::new(String::new()),
        issuer: as_base.to_owned(),
        token_endpoint: format!("{as_base}/token"),
        resource: "http://127.0.0.1:9/mcp".into(),
        redirect_uri: String::new(),
        scopes: vec![],
        return_url: None,
        expires_at: switchboard_domain::clock::now(),
    };
    let tokens = TokenSet {
        access_token: Secret::new(format!("at-{family}-0")),
        refresh_token: Some(Secret::new(rt)),
        token_type: "Bearer".into(),
        expires_at: Some(switchboard_domain::clock::now() + life),
        scope: None,
    };
    store.save_tokens(&flow, &tokens, &[], switchboard_domain::clock::now()).await.expect("seed");
}

/// A server on the strict provider at `as_base`, and an agent attached to nothing: (server id,
/// agent id). `discovered`: the server's endpoint is the provider's `/mcp`, so discovery finds the
/// provider (and its revocation endpoint); otherwise its URLs are configured and nothing answers
/// at its endpoint.
pub async fn strict_server(app: &crate::helpers::TestApp, as_base: &str, discovered: bool) -> (String, String) {
    let auth = if discovered {
        json!({"type": "oauth_authorization_code_public_pkce", "client_id": "c"})
    } else {
        json!({"type": "oauth_authorization_code_public_pkce", "client_id": "c",
               "auth_url": format!("{as_base}/authorize"), "token_url": format!("{as_base}/token")})
    };
    let endpoint = if discovered { format!("{as_base}/mcp") } else { "http://127.0.0.1:9/mcp".into() };
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "strict", "config": {"endpoint": endpoint, "auth": auth}}))
        .await
        .json();
    if discovered {
        assert_eq!(server["discovery_result"]["revocation_url"], format!("{as_base}/revoke"), "{server:#}");
    }
    (server["id"].as_str().expect("id").to_owned(), app.create_agent("bot").await)
}

/// The grant of `user` through `agent` to `server` in the test's tenant.
pub fn grant_key(app: &crate::helpers::TestApp, user: &str, agent: &str, server: &str) -> GrantKey {
    GrantKey {
        tenant_id: app.tenant_id,
        user_id: user.into(),
        agent_id: uuid::Uuid::parse_str(agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(server).expect("id").into(),
    }
}
