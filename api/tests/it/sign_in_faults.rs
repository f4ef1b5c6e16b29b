//! ID tokens a certified provider never sends, from an in-process provider that can be told to:
//! signed by another key, from another issuer, for another client, with another nonce, and an
//! authorization answer naming another issuer (RFC 9207). Each is refused at the callback with a
//! page that says why, and no code reaches the client. The same provider, behaving, signs in.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::gateway::Upstream;
use crate::gateway_e2e::{local_app, route};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Provider {
    base: String,
    key: EcdsaKeyPair,
    other_key: EcdsaKeyPair,
    /// What to get wrong: "", "signature", "issuer", "audience", "nonce", "iss_param".
    mode: Mutex<String>,
    nonce: Mutex<String>,
}

fn keypair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key")
}

impl Provider {
    fn id_token(&self) -> String {
        let mode = self.mode.lock().expect("mode").clone();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        let claims = json!({
            "iss": if mode == "issuer" { "https://evil.example.com".to_owned() } else { self.base.clone() },
            "aud": if mode == "audience" { "someone-else" } else { "switchboard" },
            "sub": "alice",
            "nonce": if mode == "nonce" { "not-the-nonce".to_owned() } else { self.nonce.lock().expect("nonce").clone() },
            "iat": now, "exp": now + 300,
        });
        let input = format!(
            "{}.{}",
            B64.encode(json!({"alg": "ES256", "kid": "k1"}).to_string()),
            B64.encode(claims.to_string())
        );
        let key = if mode == "signature" { &self.other_key } else { &self.key };
        let sig = key.sign(&SystemRandom::new(), input.as_bytes()).expect("sign");
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

async fn metadata(p: web::Data<Arc<Provider>>) -> HttpResponse {
    let b = &p.base;
    HttpResponse::Ok().json(json!({"issuer": b, "authorization_endpoint": format!("{b}/authorize"), "token_endpoint": format!("{b}/token"),
        "jwks_uri": format!("{b}/jwks"), "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"]}))
}

async fn jwks(p: web::Data<Arc<Provider>>) -> HttpResponse {
    let public = p.key.public_key().as_ref();
    HttpResponse::Ok().json(json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65])}]}))
}

async fn authorize(
    p: web::Data<Arc<Provider>>,
    q: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    *p.nonce.lock().expect("nonce") = q.get("nonce").cloned().unwrap_or_default();
    let mut back = reqwest::Url::parse(&q["redirect_uri"]).expect("redirect_uri");
    back.query_pairs_mut().append_pair("code", "the-code").append_pair("state", &q["state"]);
    if p.mode.lock().expect("mode").as_str() == "iss_param" {
        back.query_pairs_mut().append_pair("iss", "https://evil.example.com");
    }
    HttpResponse::Found().insert_header(("location", back.to_string())).finish()
}

async fn token(p: web::Data<Arc<Provider>>) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": p.id_token()}))
}

async fn start_provider() -> Arc<Provider> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let p = Arc::new(Provider {
        base,
        key: keypair(),
        other_key: keypair(),
        mode: Mutex::new(String::new()),
        nonce: Mutex::new(String::new()),
    });
    let data = web::Data::new(p.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/.well-known/openid-configuration", web::get().to(metadata))
            .route("/jwks", web::get().to(jwks))
            .route("/authorize", web::get().to(authorize))
            .route("/token", web::post().to(token))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    p
}

#[tokio::test]
async fn id_tokens_from_another_issuer_key_or_client_or_with_another_nonce_are_refused() {
    let app = local_app().await;
    let provider = start_provider().await;
    let upstream = Upstream::start(&[]);
    let body = json!({"name": "F", "slug": "fixture", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    let (_, _, url) = route(&app, &app.key, body, "Bot", None).await;
    let slug = url.split("/mcp/").nth(1).and_then(|r| r.split('/').next()).expect("slug").to_owned();
    let idp = json!({"issuer": provider.base, "client_id": "switchboard", "client_secret": "a-long-client-secret"});
    let put = app.call(Method::PUT, "/v1/settings/identity-provider", Some(&app.key), Some(&idp)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let issuer = format!("{}/oauth/{slug}", app.base);
    let redirect = "http://127.0.0.1:9/cb";
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let reg: Value = client
        .post(format!("{issuer}/register"))
        .json(&json!({"redirect_uris": [redirect]}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();

    // One browser per attempt: authorize → provider → callback; where it ends and what it says.
    let attempt = |mode: &'static str| {
        let (provider, client, issuer, client_id, url, base) =
            (provider.clone(), client.clone(), issuer.clone(), client_id.clone(), url.clone(), app.base.clone());
        async move {
            *provider.mode.lock().expect("mode") = mode.to_owned();
            let mut next = reqwest::Url::parse(&format!("{issuer}/authorize")).expect("url");
            next.query_pairs_mut()
                .append_pair("response_type", "code")
                .append_pair("client_id", &client_id)
                .append_pair("redirect_uri", redirect)
                .append_pair("state", "s")
                .append_pair("code_challenge", &switchboard_discovery::oauth::s256_challenge(&"v".repeat(50)))
                .append_pair("code_challenge_method", "S256")
                .append_pair("resource", &url);
            let mut cookies: Vec<String> = Vec::new();
            for _ in 0..10 {
                if next.as_str().starts_with(redirect) {
                    return (StatusCode::FOUND, next.to_string());
                }
                let mut req = client.get(next.clone());
                if next.as_str().starts_with(&base) {
                    req = req.header("cookie", cookies.join("; "));
                }
                let r = req.send().await.expect("step");
                for c in r.headers().get_all("set-cookie") {
                    cookies.push(c.to_str().unwrap_or_default().split(';').next().unwrap_or_default().to_owned());
                }
                if !r.status().is_redirection() {
                    let status = r.status();
                    return (status, r.text().await.unwrap_or_default());
                }
                next = next.join(r.headers()["location"].to_str().expect("location")).expect("join");
            }
            panic!("too many redirects")
        }
    };
    for (mode, says) in [
        ("signature", "signature is not valid"),
        ("issuer", "issued by `https://evil.example.com`"),
        ("audience", "not meant for this client"),
        ("nonce", "nonce does not match"),
        ("iss_param", "did not come from your organisation"),
    ] {
        let (status, page) = attempt(mode).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {page}");
        assert!(page.contains(says), "{mode}: {page}");
        assert!(!page.contains("code="), "{mode}");
    }
    // Behaving, the same provider signs alice in: the consent page names her.
    let (status, page) = attempt("").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"id="user">alice<"#), "{page}");

    // Rules of who may sign in: alice lacks the group, so she is turned away.
    let strict =
        json!({"issuer": provider.base, "client_id": "switchboard", "required_claims": {"groups": "mcp-users"}});
    let put = app.call(Method::PUT, "/v1/settings/identity-provider", Some(&app.key), Some(&strict)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let (status, page) = attempt("").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("not allowed to sign in here"), "{page}");
}
