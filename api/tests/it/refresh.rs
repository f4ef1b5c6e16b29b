//! Proactive refresh against the real `oidc-provider` (rotating refresh tokens, reuse detection):
//! the worker refreshes ahead of expiry under its lease, stores the rotated refresh token, never
//! presents the old one again, and turns a grant the provider killed into `needs_reauth` with
//! exactly one event.

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_domain::connection::GrantKey;
use switchboard_worker::refresh::Outcome;

use crate::consent::consent_in_browser;
use crate::helpers::{Options, TestApp};
use crate::peers::Peers;

/// The id of the first connection of a `/v1/connections` list.
fn connection_id(listed: &serde_json::Value) -> uuid::Uuid {
    uuid::Uuid::parse_str(listed["data"][0]["id"].as_str().unwrap_or_default()).expect("a connection id")
}

/// Makes every connection of the app due now (the explicit "drain" of a test; no sleeping).
pub async fn make_due(app: &TestApp) {
    // A second in the past: the claim reads the database's clock, which SQLite keeps to the millisecond.
    make_due_at(app, switchboard_domain::clock::now() - chrono::TimeDelta::seconds(1)).await;
}

/// Makes every grant of the test's tenant due at `when`.
pub async fn make_due_at(app: &TestApp, when: chrono::DateTime<chrono::Utc>) {
    switchboard_domain::store::testing::make_refreshes_due(app.store(), app.tenant_id, when).await.expect("make due");
}

#[tokio::test]
async fn grants_are_refreshed_ahead_of_expiry_with_rotation() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}}))
        .await
        .json();
    let (server, client_id) = (
        server["id"].as_str().expect("id").to_owned(),
        server["config"]["auth"]["client_id"].as_str().expect("client").to_owned(),
    );
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let connect = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"), Some(&ticket), None)
        .await
        .json();
    let back = consent_in_browser(connect["auth_url"].as_str().expect("auth_url")).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    let res = app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("cb");
    assert_eq!(res.status(), StatusCode::OK);

    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    let store = app.store().tenant(app.tenant_id);
    let first = store.token_set(&key).await.expect("read").expect("tokens");
    let r1 = first.refresh_token.clone().expect("a refresh token");
    let next = switchboard_domain::store::testing::next_refresh_at(app.store(), app.tenant_id).await.expect("row");
    let due_in = (next.expect("scheduled") - switchboard_domain::clock::now()).num_seconds();
    assert!((2800..=2880).contains(&due_in), "due at 80 % of the hour: {due_in} s");

    let worker = app.worker();
    // Nothing is due yet: a pass does nothing.
    assert!(worker.refresher().tick(100).await.expect("tick").is_empty());

    make_due(&app).await;
    let report = worker.refresher().tick(100).await.expect("tick");
    assert_eq!(report.get(&Outcome::Refreshed), Some(&1), "{report:?}");
    let second = store.token_set(&key).await.expect("read").expect("tokens");
    let r2 = second.refresh_token.clone().expect("rotated");
    assert_ne!(second.access_token.expose(), first.access_token.expose());
    assert_ne!(r2.expose(), r1.expose(), "the rotated refresh token is stored");
    assert_eq!(peers.stats().await["token_grants"]["refresh_token"], 1);

    // The next refresh presents the rotated token (presenting r1 again would make the provider
    // revoke the whole grant, and this refresh would fail).
    make_due(&app).await;
    assert_eq!(worker.refresher().tick(100).await.expect("tick").get(&Outcome::Refreshed), Some(&1));
    assert_eq!(peers.stats().await["token_grants"]["refresh_token"], 2);
    let check = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check"), Some(&ticket), None)
        .await
        .json();
    assert_eq!(check["ok"], true, "the refreshed token works upstream: {check:#}");

    // Someone replays the spent r1 at the provider: reuse detection revokes the grant. The next
    // refresh gets invalid_grant, re-reads, and marks the grant needs_reauth — once.
    let res = reqwest::Client::new()
        .post(format!("{}/token", peers.issuer))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", r1.expose()), ("client_id", &client_id)])
        .send()
        .await
        .expect("replay");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    make_due(&app).await;
    assert_eq!(worker.refresher().tick(100).await.expect("tick").get(&Outcome::NeedsReauth), Some(&1));
    assert!(worker.refresher().tick(100).await.expect("tick").is_empty(), "a dead grant is not retried");
    let listed = app.get(&format!("/v1/connections?mcp_server_id={server}")).await.json();
    assert_eq!(listed["data"][0]["status"], "needs_reauth", "{listed:#}");
    let events: Vec<String> = store
        .connection_events(connection_id(&listed))
        .await
        .expect("events")
        .into_iter()
        .map(|(_, kind, _, _)| kind)
        .collect();
    assert_eq!(
        events,
        ["connection.connected", "connection.refreshed", "connection.refreshed", "connection.reauth_required"]
    );
    let outcomes: Vec<String> = app.get(&format!("/v1/issuances?mcp_server_id={server}")).await.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|i| format!("{}/{}", i["outcome"].as_str().unwrap_or(""), i["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(outcomes, ["refused/invalid_grant", "issued/refresh", "issued/refresh", "issued/"]);
    // No token reached the logs.
    let logs = String::from_utf8_lossy(&crate::helpers::captured_logs().lock().expect("logs")).into_owned();
    for t in [first.access_token.expose(), r1.expose(), second.access_token.expose(), r2.expose()] {
        assert!(!logs.contains(t));
    }
}

/// The integrators' access-token call: a token about to expire is refreshed first, once however
/// many callers ask at the same time; a fresh one is returned as is; a dead grant answers 409
/// with where to send the user.
#[tokio::test]
async fn access_tokens_are_fresh_and_refreshed_once_under_concurrency() {
    use std::sync::{Arc, Mutex};

    use crate::strict_as::{Provider, seed_grant, start_provider};

    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let provider = Arc::new(Mutex::new(Provider::default()));
    let as_base = start_provider(provider.clone());
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "strict", "config": {"endpoint": "http://127.0.0.1:9/mcp",
            "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "c",
                     "auth_url": format!("{as_base}/authorize"), "token_url": format!("{as_base}/token")}}}),
        )
        .await
        .id();
    let agent = app.create_agent("bot").await;
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    let store = app.store().tenant(app.tenant_id);
    // Expires in 30 s: inside the 60 s margin, so the first caller refreshes.
    seed_grant(&store, &provider, &as_base, key.clone(), 0, chrono::TimeDelta::seconds(30)).await;
    let id = app.get("/v1/connections").await.json()["data"][0]["id"].as_str().expect("id").to_owned();

    let mut calls = Vec::new();
    for _ in 0..20 {
        let (client, url, api_key) =
            (app.client.clone(), format!("{}/v1/connections/{id}/access-token", app.base), app.key.clone());
        calls.push(tokio::spawn(async move {
            let res = client.post(url).bearer_auth(api_key).send().await.expect("call");
            (res.status(), res.json::<serde_json::Value>().await.expect("json"))
        }));
    }
    let mut tokens = std::collections::BTreeSet::new();
    for c in calls {
        let (status, body) = c.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], "http://127.0.0.1:9/mcp");
        tokens.insert(body["access_token"].as_str().expect("token").to_owned());
    }
    assert_eq!(tokens.into_iter().collect::<Vec<_>>(), ["at-0-1"], "everyone got the one refreshed token");
    assert_eq!(provider.lock().expect("provider").families[0].presentations, 1, "one refresh for twenty callers");
    let issued = app.get(&format!("/v1/issuances?mcp_server_id={server}")).await.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|i| i["reason"] == "access_token_api")
        .count();
    assert_eq!(issued, 20, "every hand-out is recorded");

    // The provider kills the grant (its refresh token is replayed elsewhere); the worker finds out.
    let replay = reqwest::Client::new()
        .post(format!("{as_base}/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "rt-0-0")])
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    make_due(&app).await;
    let worker = app.worker();
    assert_eq!(worker.refresher().tick(10).await.expect("tick").get(&Outcome::NeedsReauth), Some(&1));
    let res = app.call(Method::POST, &format!("/v1/connections/{id}/access-token"), Some(&app.key), None).await;
    let problem = res.problem(StatusCode::CONFLICT, "reauth_required");
    assert!(
        problem["auth_url"].as_str().is_some_and(|u| u.starts_with(&format!("{as_base}/authorize?"))),
        "{problem:#}"
    );
    // Other tenants' connections are not found.
    let (_, other) = app.other_tenant().await;
    app.call(Method::POST, &format!("/v1/connections/{id}/access-token"), Some(&other), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}
