//! Session tickets: minting, the runtime plane's view, holder attenuation, revocation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_domain::ticket;

use crate::helpers::TestApp;

async fn mint(app: &TestApp, agents: &[&str]) -> Value {
    let res =
        app.post("/v1/session-tickets", &json!({"user_id": "user-7", "agent_ids": agents, "expires_in": 600})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.json()
}

async fn public_key(app: &TestApp) -> String {
    app.get("/v1/session-tickets/public-key").await.json()["public_key"].as_str().expect("key").to_owned()
}

#[tokio::test]
async fn minting_validates_its_input() {
    let app = TestApp::spawn().await;
    let agent = app.create_agent("bot").await;
    let cases = [
        (json!({"agent_ids": [agent]}), "user_id", "required"),
        (json!({"user_id": "u"}), "agent_ids", "required"),
        (json!({"user_id": "u", "agent_ids": []}), "agent_ids", "invalid"),
        (json!({"user_id": "u", "agent_ids": ["nope"]}), "agent_ids[0]", "invalid"),
        (json!({"user_id": "u", "agent_ids": [agent], "expires_in": 5}), "expires_in", "out_of_range"),
        (json!({"user_id": "u", "agent_id": agent}), "agent_id", "unknown_field"),
    ];
    for (body, field, code) in cases {
        let errors = app.post("/v1/session-tickets", &body).await.field_errors();
        assert!(errors.contains(&(field.to_owned(), code.to_owned())), "{body}: {errors:?}");
    }
    // An agent the tenant does not have is a 404, like every id of another tenant.
    let res = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [uuid::Uuid::now_v7()]})).await;
    res.problem(reqwest::StatusCode::NOT_FOUND, "not_found");
    let t = mint(&app, &[&agent]).await;
    let ticket = t["ticket"].as_str().expect("ticket");
    assert!(ticket.starts_with(&format!("sbt_{}_", app.tenant_id.0.simple())));
    assert_eq!(t["user_id"], "user-7");
    assert_eq!(t["agent_ids"], json!([agent]));
    let expires = chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().expect("expires_at")).expect("date");
    let left = expires.signed_duration_since(switchboard_domain::clock::now()).num_seconds();
    assert!((590..=600).contains(&left), "{left}");
    let key = public_key(&app).await;
    assert_eq!(key.len(), 64);
    assert_eq!(public_key(&app).await, key, "one key per tenant");
}

#[tokio::test]
async fn the_runtime_plane_sees_what_the_ticket_allows() {
    let app = TestApp::spawn().await;
    let agent = app.create_agent("bot").await;
    let other_agent = app.create_agent("other").await;
    let linear = app.create_server("Linear").await;
    let github = app
        .post("/v1/mcp-servers", &json!({"name": "GitHub", "config": {"endpoint": "https://gh.example.com/mcp", "auth": {"type": "oauth_authorization_code_public_pkce", "scopes": ["repo"]}}}))
        .await
        .id();
    for s in [&linear, &github] {
        assert_eq!(app.put(&format!("/v1/agents/{agent}/mcp-servers/{s}"), None).await.status, StatusCode::CREATED);
    }
    let t = mint(&app, &[&agent]).await;
    let ticket = t["ticket"].as_str().expect("ticket").to_owned();
    let list = |ticket: String, agent: String| {
        let app = &app;
        async move { app.call(Method::GET, &format!("/v1/runtime/agents/{agent}/mcp-servers"), Some(&ticket), None).await }
    };

    let res = list(ticket.clone(), agent.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let data = res.json()["data"].as_array().expect("data").clone();
    assert_eq!(data.len(), 2);
    let gh = data.iter().find(|s| s["mcp_server_id"] == github.as_str()).expect("github");
    assert_eq!(gh["requires_user_connection"], true);
    assert_eq!(gh["connection_status"], "not_connected");
    assert_eq!(gh["scopes"], json!(["repo"]));
    assert_eq!(gh["auth_type"], "oauth_authorization_code_public_pkce");

    // An agent outside the ticket: the most common integration mistake, named as such.
    let body = list(ticket.clone(), other_agent.clone()).await.problem(StatusCode::FORBIDDEN, "ticket_scope");
    assert!(body["hint"].as_str().is_some_and(|h| h.contains("agent_ids")));

    // The holder narrows the ticket offline: one server only, then a past expiry.
    let key = public_key(&app).await;
    let only_linear =
        ticket::attenuate(&ticket, &key, &format!(r#"check if requested_server($s), {{"{linear}"}}.contains($s)"#))
            .expect("attenuate");
    let res = list(only_linear, agent.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let shown: Vec<Value> =
        res.json()["data"].as_array().expect("data").iter().map(|s| s["mcp_server_id"].clone()).collect();
    assert_eq!(shown, [json!(linear)], "the attenuated ticket sees one server");
    let not_this_agent =
        ticket::attenuate(&ticket, &key, &format!(r#"check if requested_agent($a), {{"{other_agent}"}}.contains($a)"#))
            .expect("attenuate");
    list(not_this_agent, agent.clone()).await.problem(StatusCode::FORBIDDEN, "ticket_scope");
    let expired = ticket::attenuate(&ticket, &key, "check if time($t), $t <= 2020-01-01T00:00:00Z").expect("attenuate");
    list(expired, agent.clone()).await.problem(StatusCode::UNAUTHORIZED, "ticket_expired");

    // Credentials of other planes, and forged tickets.
    app.call(Method::GET, &format!("/v1/runtime/agents/{agent}/mcp-servers"), Some(&app.key), None)
        .await
        .problem(StatusCode::FORBIDDEN, "wrong_credential");
    app.call(Method::GET, "/v1/mcp-servers", Some(&ticket), None)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let (other_tenant, other_key) = app.other_tenant().await;
    let forged = ticket.replacen(&app.tenant_id.0.simple().to_string(), &other_tenant.0.simple().to_string(), 1);
    list(forged, agent.clone()).await.problem(StatusCode::UNAUTHORIZED, "invalid_ticket");
    let theirs_agent =
        app.call(Method::POST, "/v1/agents", Some(&other_key), Some(&json!({"name": "theirs"}))).await.id();
    let theirs = app
        .call(
            Method::POST,
            "/v1/session-tickets",
            Some(&other_key),
            Some(&json!({"user_id": "x", "agent_ids": [theirs_agent]})),
        )
        .await
        .json();
    list(theirs["ticket"].as_str().expect("ticket").to_owned(), agent.clone())
        .await
        .problem(StatusCode::FORBIDDEN, "ticket_scope");
    list("sbt_garbage".into(), agent.clone()).await.problem(StatusCode::UNAUTHORIZED, "invalid_ticket");
}

#[tokio::test]
async fn revocation_reaches_attenuated_tickets() {
    let app = TestApp::spawn().await;
    let agent = app.create_agent("bot").await;
    let key_hex = || async { public_key(&app).await };
    let t = mint(&app, &[&agent]).await;
    let ticket = t["ticket"].as_str().expect("ticket").to_owned();
    let child = ticket::attenuate(&ticket, &key_hex().await, "check if operation(\"list\")").expect("attenuate");
    let path = format!("/v1/runtime/agents/{agent}/mcp-servers");
    assert_eq!(app.call(Method::GET, &path, Some(&child), None).await.status, StatusCode::OK);

    // Revoking the child leaves the parent working.
    let res = app.post("/v1/session-tickets/revoke", &json!({"ticket": child})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    app.call(Method::GET, &path, Some(&child), None).await.problem(StatusCode::UNAUTHORIZED, "ticket_revoked");
    assert_eq!(app.call(Method::GET, &path, Some(&ticket), None).await.status, StatusCode::OK);

    // Revoking the parent by its revocation id reaches every descendant.
    let sibling = ticket::attenuate(&ticket, &key_hex().await, "check if operation(\"list\")").expect("attenuate");
    let res = app.post("/v1/session-tickets/revoke", &json!({"revocation_id": t["revocation_id"]})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    app.call(Method::GET, &path, Some(&ticket), None).await.problem(StatusCode::UNAUTHORIZED, "ticket_revoked");
    app.call(Method::GET, &path, Some(&sibling), None).await.problem(StatusCode::UNAUTHORIZED, "ticket_revoked");

    // Bad revocation requests.
    assert_eq!(
        app.post("/v1/session-tickets/revoke", &json!({})).await.field_errors(),
        vec![("ticket".into(), "required".into())]
    );
    let (_, other_key) = app.other_tenant().await;
    let res =
        app.call(Method::POST, "/v1/session-tickets/revoke", Some(&other_key), Some(&json!({"ticket": ticket}))).await;
    assert_eq!(res.field_errors(), vec![("ticket".into(), "invalid".into())]);
    let audit = app.get("/v1/audit-events?action=session_ticket.revoked").await.json();
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(2));
}
