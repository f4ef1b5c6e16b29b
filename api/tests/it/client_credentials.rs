//! Client-credentials servers: the token is cached and reused until shortly before it expires,
//! not fetched per call; a token the server refuses is dropped and fetched anew.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};

/// A token endpoint (client credentials, tokens `cc-<n>` for an hour) and an MCP endpoint that
/// accepts only the newest token.
fn machine_server(issued: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let (t, m) = (issued.clone(), issued.clone());
        App::new()
            .route(
                "/token",
                web::post().to(move || {
                    let n = t.fetch_add(1, Ordering::SeqCst) + 1;
                    async move { HttpResponse::Ok().json(json!({"access_token": format!("cc-{n}"), "token_type": "Bearer", "expires_in": 3600})) }
                }),
            )
            .route(
                "/mcp",
                web::post().to(move |req: HttpRequest, body: web::Json<Value>| {
                    let current = format!("Bearer cc-{}", m.load(Ordering::SeqCst));
                    async move {
                        if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(current.as_str()) {
                            return HttpResponse::Unauthorized().finish();
                        }
                        let result = match body["method"].as_str() {
                            Some("initialize") => json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "machine", "version": "1"}}),
                            Some("tools/list") => json!({"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]}),
                            _ => return HttpResponse::Accepted().finish(),
                        };
                        HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": body["id"], "result": result}))
                    }
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    base
}

#[tokio::test]
async fn client_credentials_tokens_are_cached_not_fetched_per_call() {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let issued = Arc::new(AtomicUsize::new(0));
    let base = machine_server(issued.clone());
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "machine", "config": {"endpoint": format!("{base}/mcp"),
            "auth": {"type": "oauth_client_credentials", "client_id": "svc", "client_secret": "s3cret", "token_url": format!("{base}/token")}}}))
        .await
        .id();
    let created = issued.load(Ordering::SeqCst);
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let check = || async {
        app.call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check"), Some(&ticket), None)
            .await
            .json()
    };
    for _ in 0..5 {
        let c = check().await;
        assert_eq!(c["ok"], true, "{c:#}");
    }
    assert_eq!(issued.load(Ordering::SeqCst), created + 1, "one token for five calls");
    // The provider rotates its key (another client got a newer token): the cached one is refused
    // once, dropped, and the next call fetches a new one.
    issued.fetch_add(1, Ordering::SeqCst);
    assert_eq!(check().await["ok"], false);
    assert_eq!(check().await["ok"], true);
    assert_eq!(issued.load(Ordering::SeqCst), created + 3);
}
