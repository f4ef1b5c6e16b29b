//! The live check of `none`, `token` and client-credentials servers: initialize + tools/list.

use std::collections::BTreeMap;

use serde_json::json;
use switchboard_discovery::mcp;
use url::Url;

use crate::fake::{Fake, Route};
use crate::layouts::discoverer;

/// An MCP server: JSON initialize with a session, SSE tools/list, 202 for notifications.
fn mcp_server(fake: &Fake, authorization: Option<&str>) {
    let auth = |r: Route| match authorization {
        Some(a) => r.requires(a),
        None => r,
    };
    fake.route(
        "POST",
        "/mcp#initialize",
        auth(Route::json(200, json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake-mcp", "version": "1"}}}))
            .header("mcp-session-id", "session-1")),
    );
    fake.route("POST", "/mcp#notifications/initialized", auth(Route::status(202)));
    let tools = json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "search", "inputSchema": {"type": "object"}}, {"name": "fetch", "inputSchema": {"type": "object"}}]}});
    fake.route(
        "POST",
        "/mcp#tools/list",
        auth(Route {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: format!("event: message\ndata: {tools}\n\n").into_bytes(),
            ..Route::default()
        }),
    );
}

#[tokio::test]
async fn open_and_token_servers_are_verified() {
    let d = discoverer();
    let open = Fake::start();
    mcp_server(&open, None);
    let mut steps = Vec::new();
    let v = mcp::verify(
        d.fetcher(),
        &Url::parse(&format!("{}/mcp", open.base)).expect("url"),
        &BTreeMap::new(),
        None,
        &mut steps,
    )
    .await;
    assert!(v.ok, "{v:?}");
    assert_eq!(v.tools, ["search", "fetch"]);
    assert_eq!(v.server_name.as_deref(), Some("fake-mcp"));
    assert_eq!(v.protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(steps.len(), 3);

    let guarded = Fake::start();
    mcp_server(&guarded, Some("Bearer right-token"));
    let endpoint = Url::parse(&format!("{}/mcp", guarded.base)).expect("url");
    let v = mcp::verify(d.fetcher(), &endpoint, &BTreeMap::new(), Some("right-token"), &mut Vec::new()).await;
    assert!(v.ok, "{v:?}");
    let mut steps = Vec::new();
    let v = mcp::verify(d.fetcher(), &endpoint, &BTreeMap::new(), Some("wrong-token"), &mut steps).await;
    assert!(!v.ok);
    assert_eq!(v.error.as_deref(), Some("the server refused the credentials (401)"));
    assert!(!format!("{steps:?}{v:?}").contains("wrong-token"), "the token never appears in steps or errors");
}

#[tokio::test]
async fn client_credentials_are_exchanged_then_used() {
    let d = discoverer();
    let server = Fake::start();
    mcp_server(&server, Some("Bearer cc-access-token"));
    // Basic base64("my+client:s3cr%3At"): id and secret are form-encoded first (RFC 6749 §2.3.1).
    let basic = "Basic bXkrY2xpZW50OnMzY3IlM0F0";
    server.route(
        "POST",
        "/token",
        Route::json(200, json!({"access_token": "cc-access-token", "token_type": "Bearer", "expires_in": 3600}))
            .requires(basic),
    );
    let token_url = Url::parse(&format!("{}/token", server.base)).expect("url");
    let mut steps = Vec::new();
    let token = mcp::client_credentials_token(
        d.fetcher(),
        &token_url,
        "my client",
        "s3cr:t",
        &["read".into()],
        Some("https://r.example/mcp"),
        &mut steps,
    )
    .await;
    assert_eq!(token.as_deref(), Ok("cc-access-token"));
    let bad = mcp::client_credentials_token(d.fetcher(), &token_url, "my client", "wrong", &[], None, &mut steps).await;
    assert!(bad.is_err());
    assert!(!format!("{steps:?}{bad:?}").contains("cc-access-token") && !format!("{steps:?}").contains("s3cr"));
}
