//! Another tenant's ids are 404s on every route; credentials of one plane never open the other.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn another_tenants_ids_are_not_found_on_every_route() {
    let app = TestApp::spawn().await;
    let server = app.create_server("mine").await;
    let agent = app.create_agent("mine").await;
    assert_eq!(app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.status, StatusCode::CREATED);

    let (_, other) = app.other_tenant().await;
    let other_server = {
        let res = app.call(Method::POST, "/v1/mcp-servers", Some(&other), Some(&json!({"name": "theirs", "config": {"endpoint": "https://t.example/mcp", "auth": {"type": "none"}}}))).await;
        res.id()
    };
    let other_agent = app.call(Method::POST, "/v1/agents", Some(&other), Some(&json!({"name": "theirs"}))).await.id();

    let patch = json!({"name": "stolen"});
    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/mcp-servers/{server}"), None),
        (Method::PATCH, format!("/v1/mcp-servers/{server}"), Some(patch.clone())),
        (Method::DELETE, format!("/v1/mcp-servers/{server}"), None),
        (Method::GET, format!("/v1/agents/{agent}"), None),
        (Method::PATCH, format!("/v1/agents/{agent}"), Some(patch.clone())),
        (Method::DELETE, format!("/v1/agents/{agent}"), None),
        (Method::GET, format!("/v1/agents/{agent}/mcp-servers"), None),
        (Method::PUT, format!("/v1/agents/{agent}/mcp-servers/{server}"), None),
        (Method::DELETE, format!("/v1/agents/{agent}/mcp-servers/{server}"), None),
        // Their agent with my server, and my agent with their server.
        (Method::PUT, format!("/v1/agents/{other_agent}/mcp-servers/{server}"), None),
        (Method::PUT, format!("/v1/agents/{agent}/mcp-servers/{other_server}"), None),
    ];
    for (method, path, body) in routes {
        let res = app.call(method.clone(), &path, Some(&other), body.as_ref()).await;
        // The second-to-last route is the other tenant's own agent with my server: still a 404.
        res.problem(StatusCode::NOT_FOUND, "not_found");
        assert!(!res.text.contains("mine"), "{method} {path} leaked: {}", res.text);
    }
    // Lists show only one's own.
    let theirs = app.call(Method::GET, "/v1/mcp-servers", Some(&other), None).await.json();
    assert_eq!(theirs["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(theirs["data"][0]["name"], "theirs");
    // And nothing of mine changed.
    assert_eq!(app.get(&format!("/v1/mcp-servers/{server}")).await.json()["name"], "mine");
    assert_eq!(
        app.get(&format!("/v1/agents/{agent}/mcp-servers")).await.json()["data"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn planes_keep_their_credentials_apart() {
    let app = TestApp::spawn().await;
    // A tenant key on admin routes.
    for (m, p) in [
        (Method::GET, "/v1/admin/tenants".to_owned()),
        (Method::POST, "/v1/admin/tenants".to_owned()),
        (Method::POST, format!("/v1/admin/tenants/{}/api-keys", app.tenant_id)),
    ] {
        let res = app.call(m, &p, Some(&app.key), Some(&json!({"name": "x"}))).await;
        let body = res.problem(StatusCode::FORBIDDEN, "wrong_credential");
        assert!(body["hint"].as_str().is_some_and(|h| h.contains("SWITCHBOARD_ADMIN_TOKEN")));
    }
    // The admin token on tenant routes.
    for p in ["/v1/mcp-servers", "/v1/agents"] {
        app.call(Method::GET, p, Some(&app.admin_token), None).await.problem(StatusCode::FORBIDDEN, "wrong_credential");
    }
    // No credentials, or wrong ones.
    for key in [None, Some("sb_wrong"), Some("sb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), Some("nonsense")] {
        let res = app.call(Method::GET, "/v1/mcp-servers", key, None).await;
        res.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(res.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));
    }
    app.call(Method::GET, "/v1/admin/tenants", Some("not-the-admin-token"), None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(Method::GET, "/v1/admin/tenants", None, None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
}
