//! A strict authorization server for refresh tests: rotation on every refresh, reuse detection
//! (presenting a spent refresh token revokes its whole family), every presentation counted, a
//! 20 ms answer to widen races.

use std::collections::HashMap;
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

#[derive(Default)]
pub struct Provider {
    /// refresh token → (family, spent)
    pub tokens: HashMap<String, (usize, bool)>,
    pub families: Vec<Family>,
    pub reuse: u32,
}

/// The strict authorization server: rotation on every refresh, reuse detection, a 20 ms answer.
pub fn start_provider(state: Arc<Mutex<Provider>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().route(
            "/token",
            web::post().to(move |form: web::Form<HashMap<String, String>>| {
                let state = state.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let presented = form.get("refresh_token").cloned().unwrap_or_default();
                    let mut p = state.lock().expect("provider");
                    let Some(&(family, spent)) = p.tokens.get(&presented) else {
                        return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
                    };
                    if spent || p.families[family].revoked {
                        // Reuse: the whole family dies (RFC 9700 §4.14).
                        p.reuse += 1;
                        p.families[family].revoked = true;
                        return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
                    }
                    p.tokens.insert(presented, (family, true));
                    let f = &mut p.families[family];
                    f.presentations += 1;
                    let next = format!("rt-{family}-{}", f.presentations);
                    f.current = next.clone();
                    let access = format!("at-{family}-{}", f.presentations);
                    p.tokens.insert(next.clone(), (family, false));
                    HttpResponse::Ok().json(json!({"access_token": access, "token_type": "Bearer",
                        "expires_in": 3600, "refresh_token": next}))
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
        expires_at: chrono::Utc::now(),
    };
    let tokens = TokenSet {
        access_token: Secret::new(format!("at-{family}-0")),
        refresh_token: Some(Secret::new(rt)),
        token_type: "Bearer".into(),
        expires_at: Some(chrono::Utc::now() + life),
        scope: None,
    };
    store.save_tokens(&flow, &tokens, &[]).await.expect("seed");
}
