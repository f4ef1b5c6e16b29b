use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

async fn post_with_key(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> crate::helpers::Response {
    let res = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    let headers = res.headers().clone();
    crate::helpers::Response { status, headers, text: res.text().await.expect("body") }
}

#[tokio::test]
async fn same_key_same_body_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let body =
        json!({"name": "Linear", "config": {"endpoint": "https://mcp.linear.app/mcp", "auth": {"type": "none"}}});
    let first = post_with_key(&app, "/v1/mcp-servers", &app.key, "create-linear-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = post_with_key(&app, "/v1/mcp-servers", &app.key, "create-linear-1", &body).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.json(), first.json());
    assert_eq!(second.header("location"), first.header("location"));
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.get("/v1/mcp-servers").await.json()["data"].as_array().map(Vec::len), Some(1), "created once");

    // Same key, different body.
    let other = json!({"name": "GitHub", "config": {"endpoint": "https://api.githubcopilot.com/mcp", "auth": {"type": "none"}}});
    let res = post_with_key(&app, "/v1/mcp-servers", &app.key, "create-linear-1", &other).await;
    res.problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    assert_eq!(app.get("/v1/mcp-servers").await.json()["data"].as_array().map(Vec::len), Some(1));

    // The same key in another tenant is another key.
    let (_, other_key) = app.other_tenant().await;
    let res = post_with_key(&app, "/v1/mcp-servers", &other_key, "create-linear-1", &body).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_ne!(res.id(), first.id());
    assert!(res.header("idempotent-replayed").is_none());

    // The same key on another route is another key.
    let res = post_with_key(&app, "/v1/agents", &app.key, "create-linear-1", &json!({"name": "bot"})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
}

#[tokio::test]
async fn failed_requests_do_not_burn_the_key() {
    let app = TestApp::spawn().await;
    let bad = json!({"name": "x", "server_url": "https://a.example/mcp"});
    post_with_key(&app, "/v1/mcp-servers", &app.key, "k-1", &bad)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let good = json!({"name": "x", "config": {"endpoint": "https://a.example/mcp", "auth": {"type": "none"}}});
    let res = post_with_key(&app, "/v1/mcp-servers", &app.key, "k-1", &good).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
}

#[tokio::test]
async fn tenant_creation_replays_without_a_second_tenant() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Replay Inc"});
    let first = post_with_key(&app, "/v1/admin/tenants", &app.admin_token, "t-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = post_with_key(&app, "/v1/admin/tenants", &app.admin_token, "t-1", &body).await;
    assert_eq!(again.json(), first.json());
    let list = app.admin(Method::GET, "/v1/admin/tenants?limit=100", None).await.json();
    let n = list["data"].as_array().expect("data").iter().filter(|t| t["name"] == "Replay Inc").count();
    assert_eq!(n, 1);
    // The stored replay is sealed: the API key it holds is not readable in the database.
    let key = first.json()["api_key"].as_str().expect("key").to_owned();
    assert!(!app.dump_database().await.contains(&key));
}
