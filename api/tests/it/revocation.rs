//! Disconnect revokes at the provider (RFC 7009) through a durable job: the grant is unusable the
//! moment the API answers; the job revokes the refresh token, then the access token, and purges
//! the sealed copy it carried.

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_domain::connection::GrantKey;

use crate::consent::consent_in_browser;
use crate::helpers::{Options, TestApp};
use crate::peers::Peers;

#[tokio::test]
async fn disconnect_revokes_at_the_provider_through_a_job() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}}))
        .await
        .json();
    assert!(server["discovery_result"]["revocation_url"].is_string(), "the provider advertises revocation");
    let client_id = server["config"]["auth"]["client_id"].as_str().expect("client").to_owned();
    let server = server["id"].as_str().expect("id").to_owned();
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let path = |verb: &str| format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/{verb}");
    let connect = app.call(Method::POST, &path("connect"), Some(&ticket), None).await.json();
    let back = consent_in_browser(connect["auth_url"].as_str().expect("auth_url")).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("callback");
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    let store = app.store().tenant(app.tenant_id);
    let tokens = store.token_set(&key).await.expect("read").expect("tokens");
    let refresh = tokens.refresh_token.clone().expect("refresh token");

    // Disconnect: unusable at once, one job queued to tell the provider.
    assert_eq!(app.call(Method::POST, &path("disconnect"), Some(&ticket), None).await.json()["status"], "revoked");
    assert!(store.token_set(&key).await.expect("read").is_none());
    let revocations = || async {
        store.list_jobs().await.expect("jobs").into_iter().filter(|j| j.kind == "revoke_tokens").collect::<Vec<_>>()
    };
    let jobs = revocations().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, "queued");
    // The refresh token still works at the provider until the job runs…
    assert!(app.drain_jobs().await >= 1);
    let jobs = revocations().await;
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("done", 1), "{jobs:?}");
    // …and not after: the provider revoked it.
    let res = reqwest::Client::new()
        .post(format!("{}/token", peers.issuer))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.expose()), ("client_id", &client_id)])
        .send()
        .await
        .expect("refresh");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<serde_json::Value>().await.expect("json")["error"], "invalid_grant");
    // Nothing is left to do, and no token is readable anywhere in the database.
    assert_eq!(app.drain_jobs().await, 0);
    let dump = app.dump_database().await;
    assert!(!dump.contains(refresh.expose()) && !dump.contains(tokens.access_token.expose()));
    let connection_id = app.get("/v1/connections").await.json()["data"][0]["id"].as_str().expect("id").to_owned();
    let events: Vec<String> = store
        .connection_events(uuid::Uuid::parse_str(&connection_id).expect("id"))
        .await
        .expect("events")
        .into_iter()
        .map(|(_, kind, _, _)| kind)
        .collect();
    assert_eq!(events, ["connection.connected", "connection.revoked"]);
}
