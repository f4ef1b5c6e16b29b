use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn tenants_and_keys_lifecycle() {
    let app = TestApp::spawn().await;
    let res = app.admin(Method::POST, "/v1/admin/tenants", Some(&json!({"name": "Acme Corp"}))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let tenant = res.json();
    assert_eq!(tenant["slug"], "acme-corp");
    let first_key = tenant["api_key"].as_str().expect("api key shown once").to_owned();
    assert!(first_key.starts_with("sb_") && first_key.len() == 46, "{first_key}");
    assert!(first_key.starts_with(tenant["api_key_prefix"].as_str().expect("prefix")));
    let tid = tenant["id"].as_str().expect("id").to_owned();

    // The key works at once and sees an empty tenant.
    let res = app.call(Method::GET, "/v1/mcp-servers", Some(&first_key), None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["data"], json!([]));

    // Listing shows the tenant, never a key.
    let list = app.admin(Method::GET, "/v1/admin/tenants?limit=100", None).await;
    assert!(list.text.contains(&tid));
    assert!(!list.text.contains("sb_"), "{}", list.text);
    let one = app.admin(Method::GET, &format!("/v1/admin/tenants/{tid}"), None).await;
    assert_eq!(one.json()["name"], "Acme Corp");
    assert!(one.json().get("api_key").is_none());

    // A second key, then revoke the first.
    let res = app.admin(Method::POST, &format!("/v1/admin/tenants/{tid}/api-keys"), Some(&json!({"name": "ci"}))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let second = res.json();
    assert_eq!(second["name"], "ci");
    let second_key = second["api_key"].as_str().expect("key").to_owned();
    let first_id = tenant["api_key_id"].as_str().expect("key id");
    assert_eq!(
        app.admin(Method::DELETE, &format!("/v1/admin/tenants/{tid}/api-keys/{first_id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    app.call(Method::GET, "/v1/mcp-servers", Some(&first_key), None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(app.call(Method::GET, "/v1/mcp-servers", Some(&second_key), None).await.status, StatusCode::OK);
    app.admin(Method::DELETE, &format!("/v1/admin/tenants/{tid}/api-keys/{first_id}"), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");

    // A key of one tenant cannot be deleted through another tenant's path.
    let second_id = second["id"].as_str().expect("id");
    app.admin(Method::DELETE, &format!("/v1/admin/tenants/{}/api-keys/{second_id}", app.tenant_id), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");

    // Errors.
    app.admin(Method::POST, "/v1/admin/tenants", Some(&json!({"name": "Acme Corp", "slug": "acme-corp"})))
        .await
        .problem(StatusCode::CONFLICT, "slug_taken");
    assert_eq!(
        app.admin(Method::POST, "/v1/admin/tenants", Some(&json!({}))).await.field_errors(),
        vec![("name".into(), "required".into())]
    );
    let missing = uuid::Uuid::now_v7();
    app.admin(Method::POST, &format!("/v1/admin/tenants/{missing}/api-keys"), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let mut app = TestApp::spawn().await;
    let mut settings = (*app.state.settings).clone();
    settings.admin_token = None;
    let state = switchboard_api::state::AppState::new(app.store().clone(), settings, None).expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    app.base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(switchboard_api::app::serve(state, listener, 1).expect("serve"));
    let body =
        app.admin(Method::GET, "/v1/admin/tenants", None).await.problem(StatusCode::FORBIDDEN, "admin_api_disabled");
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("SWITCHBOARD_ADMIN_TOKEN")));
}
