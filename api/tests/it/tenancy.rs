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

/// Every operation of the served document that names a resource by id, asked by a second tenant
/// with the first tenant's ids: each is a 404, and nothing of the first tenant changes. The list
/// of operations comes from the document, so a new `{id}` route is covered (or this test names it)
/// the day it is added.
#[tokio::test]
async fn every_id_operation_of_the_document_is_scoped_to_its_tenant() {
    let app = TestApp::spawn().await;
    let server = app.create_server("mine").await;
    let agent = app.create_agent("mine").await;
    assert_eq!(app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.status, StatusCode::CREATED);
    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "alice", "agent_ids": [agent]})).await.json()["ticket"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    let connect = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    let res = app.call(Method::POST, &connect, Some(&ticket), Some(&json!({}))).await;
    assert_eq!(res.json()["status"], "connected", "{}", res.text);
    let connection = app.get("/v1/connections").await.json()["data"][0]["id"].as_str().unwrap_or_default().to_owned();
    assert!(!connection.is_empty());

    let (_, other) = app.other_tenant().await;
    let other_agent = app.call(Method::POST, "/v1/agents", Some(&other), Some(&json!({"name": "theirs"}))).await.id();
    let res = app
        .call(
            Method::POST,
            "/v1/session-tickets",
            Some(&other),
            Some(&json!({"user_id": "alice", "agent_ids": [other_agent]})),
        )
        .await;
    let other_ticket = res.json()["ticket"].as_str().unwrap_or_default().to_owned();
    assert!(!other_ticket.is_empty(), "{}", res.text);

    // A gateway connect link of the first tenant's (what a "connect first" answer carries).
    let connect_request = switchboard_gateway::connect::seal(
        app.state.store.envelope(),
        &switchboard_gateway::connect::ConnectRequest::for_grant(&switchboard_domain::connection::GrantKey {
            tenant_id: app.tenant_id,
            user_id: "alice".into(),
            agent_id: agent.parse::<uuid::Uuid>().expect("agent id").into(),
            mcp_server_id: server.parse::<uuid::Uuid>().expect("server id").into(),
        }),
    )
    .expect("connect request");
    let spec = serde_json::to_value(switchboard_api::openapi::spec()).unwrap_or_default();
    let mut asked = 0;
    for (path, ops) in spec["paths"].as_object().into_iter().flatten() {
        if !path.contains('{') || path.starts_with("/v1/admin/") {
            // The admin plane spans tenants by design; it has its own credential.
            continue;
        }
        for (method, op) in ops.as_object().into_iter().flatten() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let runtime = op["security"].to_string().contains("session_ticket");
            // On the runtime plane a route that names a server is asked with the caller's own
            // agent and the first tenant's server; one that names only an agent, with the first
            // tenant's agent (which no ticket of the second tenant can name: a scope refusal).
            let names_server = path.contains("{server_id}");
            let (agent_id, credential) = match (runtime, names_server) {
                (true, true) => (&other_agent, &other_ticket),
                (true, false) => (&agent, &other_ticket),
                (false, _) => (&agent, &other),
            };
            let id = match path.split('/').nth(2) {
                _ if !path.contains("{id}") => "",
                Some("mcp-servers") => &server,
                Some("agents") => &agent,
                Some("connections") => &connection,
                _ => panic!("{method} {path}: which of the first tenant's ids does it take? add it here"),
            };
            let concrete = path
                .replace("{id}", id)
                .replace("{agent_id}", agent_id)
                .replace("{server_id}", &server)
                .replace("{user_id}", "alice")
                .replace("{request}", &connect_request);
            assert!(!concrete.contains('{'), "{method} {path}: a parameter this test does not fill");
            let body = match method {
                Method::PATCH => Some(json!({"name": "stolen"})),
                Method::POST | Method::PUT => Some(json!({})),
                _ => None,
            };
            let res = app.call(method.clone(), &concrete, Some(credential), body.as_ref()).await;
            if path.contains("{request}") {
                // Another tenant's connect link is not found, whatever its ticket may do.
                res.problem(StatusCode::NOT_FOUND, "not_found");
            } else if runtime && !names_server {
                res.problem(StatusCode::FORBIDDEN, "ticket_scope");
            } else if path == "/v1/users/{user_id}" {
                // A user id is the tenant's own name for a person: the second tenant erases its
                // own `alice` (nobody), never the first tenant's.
                assert!(
                    res.status.is_success() || res.status == StatusCode::NOT_FOUND,
                    "{method} {path}: {}",
                    res.text
                );
            } else {
                res.problem(StatusCode::NOT_FOUND, "not_found");
            }
            assert!(!res.text.contains("mine"), "{method} {path} leaked: {}", res.text);
            asked += 1;
        }
    }
    assert!(asked >= 17, "only {asked} operations were asked: did the document lose its paths?");
    // Nothing of the first tenant's changed.
    assert_eq!(app.get(&format!("/v1/mcp-servers/{server}")).await.json()["name"], "mine");
    assert_eq!(app.get(&format!("/v1/agents/{agent}")).await.json()["name"], "mine");
    assert_eq!(
        app.get(&format!("/v1/agents/{agent}/mcp-servers")).await.json()["data"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(app.get(&format!("/v1/connections/{connection}")).await.json()["status"], "connected");
}
