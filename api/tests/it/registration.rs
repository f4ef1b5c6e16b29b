//! Client registration choices that the real peers cannot show: Client ID Metadata Documents, a
//! provider without registration, and a registration response that rewrites `redirect_uris`.
//! The provider is an in-process fake on loopback.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};

/// An MCP server and its authorization server in one fake; `meta` extends the AS metadata and
/// `registration` is what the registration endpoint answers.
struct Provider {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
}

fn provider(meta: Value, registration: Value) -> Provider {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let (b, h) = (base.clone(), hits.clone());
    let server = HttpServer::new(move || {
        let (b, h, meta, registration) = (b.clone(), h.clone(), meta.clone(), registration.clone());
        App::new().default_service(web::to(move |req: HttpRequest| {
            let (b, h, meta, registration) = (b.clone(), h.clone(), meta.clone(), registration.clone());
            async move {
                h.lock().expect("lock").push(format!("{} {}", req.method(), req.path()));
                match (req.method().as_str(), req.path()) {
                    ("POST", "/mcp") => HttpResponse::Unauthorized()
                        .insert_header(("www-authenticate", format!(r#"Bearer resource_metadata="{b}/.well-known/oauth-protected-resource/mcp""#)))
                        .finish(),
                    ("GET", "/.well-known/oauth-protected-resource/mcp") => {
                        HttpResponse::Ok().json(json!({"resource": format!("{b}/mcp"), "authorization_servers": [b]}))
                    }
                    ("GET", "/.well-known/oauth-authorization-server") => {
                        let mut m = json!({"issuer": b, "authorization_endpoint": format!("{b}/authorize"), "token_endpoint": format!("{b}/token"),
                            "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"]});
                        if let (Some(m), Some(extra)) = (m.as_object_mut(), meta.as_object()) {
                            m.extend(extra.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.clone(), |s| Value::String(s.replace("{base}", &b))))));
                        }
                        HttpResponse::Ok().json(m)
                    }
                    ("POST", "/register") => HttpResponse::Created().json(registration),
                    _ => HttpResponse::NotFound().finish(),
                }
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    Provider { base, hits }
}

impl Provider {
    fn registrations(&self) -> usize {
        self.hits.lock().expect("lock").iter().filter(|h| *h == "POST /register").count()
    }
}

async fn app_with_public_url(url: &str) -> TestApp {
    let mut app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let mut settings = (*app.state.settings).clone();
    settings.public_url = url.into();
    let state = switchboard_api::state::AppState::new(app.store().clone(), settings, None).expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    app.base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(switchboard_api::app::serve(state, listener, 1).expect("serve"));
    app
}

fn public_server(p: &Provider) -> Value {
    json!({"name": "fake", "config": {"endpoint": format!("{}/mcp", p.base), "auth": {"type": "oauth_authorization_code_public_pkce"}}})
}

#[tokio::test]
async fn client_id_metadata_documents_replace_registration() {
    let p = provider(
        json!({"registration_endpoint": "{base}/register", "client_id_metadata_document_supported": true}),
        json!({"client_id": "must-not-be-used"}),
    );
    let app = app_with_public_url("https://switchboard.example.com").await;
    let res = app.post("/v1/mcp-servers", &public_server(&p)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let server = res.json();
    assert_eq!(server["config"]["auth"]["client_id"], "https://switchboard.example.com/oauth/client-metadata.json");
    assert_eq!(server["discovery_result"]["client_registration"], "client_id_metadata_document");
    assert_eq!(p.registrations(), 0, "no registration request with CIMD");

    // Switchboard serves the document its client_id names.
    let doc = app.call(Method::GET, "/oauth/client-metadata.json", None, None).await.json();
    assert_eq!(doc["client_id"], "https://switchboard.example.com/oauth/client-metadata.json");
    assert_eq!(doc["redirect_uris"], json!(["https://switchboard.example.com/service/mcp/consent/callback"]));
    assert_eq!(doc["token_endpoint_auth_method"], "none");

    // Without an https public URL there is no document to serve, and DCR is used instead.
    let app = app_with_public_url("http://localhost:8080").await;
    app.call(Method::GET, "/oauth/client-metadata.json", None, None).await.problem(StatusCode::NOT_FOUND, "not_found");
    let res = app.post("/v1/mcp-servers", &public_server(&p)).await.json();
    assert_eq!(res["config"]["auth"]["client_id"], "must-not-be-used");
    assert_eq!(p.registrations(), 1);
}

#[tokio::test]
async fn without_registration_support_the_server_is_saved_with_advice() {
    let p = provider(json!({}), json!({}));
    let app = app_with_public_url("http://localhost:8080").await;
    let res = app.post("/v1/mcp-servers", &public_server(&p)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let server = res.json();
    assert!(server["config"]["auth"].get("client_id").is_none());
    let message = server["discovery_result"]["message"].as_str().expect("message");
    assert!(
        message.contains("supply client_id") && message.contains("http://localhost:8080/service/mcp/consent/callback"),
        "{message}"
    );
    assert!(server["discovery_result"]["client_registration"].is_null());
}

#[tokio::test]
async fn a_registration_that_rewrites_redirect_uris_is_refused() {
    let p = provider(
        json!({"registration_endpoint": "{base}/register"}),
        json!({"client_id": "evil-client", "redirect_uris": ["https://attacker.example.com/callback"], "token_endpoint_auth_method": "none"}),
    );
    let app = app_with_public_url("http://localhost:8080").await;
    let res = app.post("/v1/mcp-servers", &public_server(&p)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let server = res.json();
    assert!(server["config"]["auth"].get("client_id").is_none(), "{server:#}");
    let warnings = server["discovery_result"]["warnings"].as_array().expect("warnings");
    assert!(warnings.iter().any(|w| w.as_str().is_some_and(|w| w.contains("changed redirect_uris"))), "{warnings:?}");
    assert_eq!(p.registrations(), 1);
}
