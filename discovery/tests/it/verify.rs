//! The live check of `none`, `token` and client-credentials servers: initialize + tools/list.

use std::collections::BTreeMap;

use serde_json::json;
use switchboard_discovery::mcp;
use switchboard_discovery::oauth::{AuthMethod, ClientAuth};
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
    assert!(
        v.error.as_deref().is_some_and(|e| e.starts_with("the server refused the credentials (401)")),
        "{:?}",
        v.error
    );
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
    let basic_only = ["client_secret_basic".to_owned()];
    let auth = ClientAuth::Basic { client_id: "my client", secret: "s3cr:t" };
    let token = mcp::client_credentials_token(
        d.fetcher(),
        &token_url,
        &auth,
        &basic_only,
        &["read".into()],
        Some("https://r.example/mcp"),
        &mut steps,
    )
    .await
    .map(|t| (t.access_token, t.method));
    assert_eq!(token, Ok(("cc-access-token".to_owned(), AuthMethod::ClientSecretBasic)));
    let wrong = ClientAuth::Basic { client_id: "my client", secret: "wrong" };
    let bad = mcp::client_credentials_token(d.fetcher(), &token_url, &wrong, &basic_only, &[], None, &mut steps)
        .await
        .map(|t| t.access_token);
    assert!(bad.is_err());
    assert!(!format!("{steps:?}{bad:?}").contains("cc-access-token") && !format!("{steps:?}").contains("s3cr"));
}

/// Servers built on the MCP Python SDK want `client_id` in the body even with HTTP Basic; and a
/// provider that refuses one advertised method (`invalid_client`) gets the other, once.
#[tokio::test]
async fn client_authentication_is_liberal_and_falls_back_once() {
    let d = discoverer();
    let server = Fake::start();
    let ok = json!({"access_token": "cc-access-token", "token_type": "Bearer", "expires_in": 60});
    server.route(
        "POST",
        "/basic-and-body",
        Route::json(200, ok.clone()).requires("Basic bXkrY2xpZW50OnMzY3IlM0F0").requires_form("client_id", "my client"),
    );
    server.route("POST", "/post-only", Route::json(200, ok).requires_form("client_secret", "s3cr:t"));
    let url = |p: &str| Url::parse(&format!("{}{p}", server.base)).expect("url");
    let (basic_and_body, post_only) = (url("/basic-and-body"), url("/post-only"));
    let auth = ClientAuth::Basic { client_id: "my client", secret: "s3cr:t" };
    let both = ["client_secret_basic".to_owned(), "client_secret_post".to_owned()];
    let mut steps = Vec::new();
    let got = |r: Result<mcp::ClientCredentialsToken, String>| r.map(|t| t.method);

    let r = mcp::client_credentials_token(d.fetcher(), &basic_and_body, &auth, &both, &[], None, &mut steps);
    assert_eq!(got(r.await), Ok(AuthMethod::ClientSecretBasic));
    assert_eq!(server.hits("/basic-and-body"), 1);

    let r = mcp::client_credentials_token(d.fetcher(), &post_only, &auth, &both, &[], None, &mut steps);
    assert_eq!(got(r.await), Ok(AuthMethod::ClientSecretPost), "one refusal, then the other method");
    assert_eq!(server.hits("/post-only"), 2);

    // Not advertised: not tried.
    let basic_only = ["client_secret_basic".to_owned()];
    let r = mcp::client_credentials_token(d.fetcher(), &post_only, &auth, &basic_only, &[], None, &mut steps);
    assert_eq!(got(r.await), Err("the token endpoint refused the client credentials (invalid_client)".into()));
    assert_eq!(server.hits("/post-only"), 3);
    assert!(!format!("{steps:?}").contains("s3cr"));
}
