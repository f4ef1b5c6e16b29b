//! Audience binding with two MCP servers behind one authorization server (peers.mjs: resource A
//! at /mcp, resource B at /b/mcp, each accepting only tokens whose `aud` is itself). A token is
//! requested per resource and only ever sent to the server it was issued for.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_domain::connection::GrantKey;
use url::Url;

use crate::consent::consent_in_browser;
use crate::helpers::{Options, TestApp};
use crate::peers::Peers;

#[tokio::test]
async fn a_token_for_one_server_is_never_sent_to_another() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let agent = app.create_agent("bot").await;
    let mut servers = Vec::new();
    for (name, url) in [("A", &peers.mcp_url), ("B", &peers.mcp_b_url)] {
        let body = json!({"name": name, "config": {"endpoint": url, "auth": {"type": "oauth_authorization_code_public_pkce"}}});
        let id = app.post("/v1/mcp-servers", &body).await.id();
        app.put(&format!("/v1/agents/{agent}/mcp-servers/{id}"), None).await;
        servers.push(id);
    }
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let rt = |path: String| {
        let (app, ticket) = (&app, ticket.clone());
        async move { app.call(Method::POST, &path, Some(&ticket), None).await }
    };
    for (server, resource) in servers.iter().zip([&peers.mcp_url, &peers.mcp_b_url]) {
        let res = rt(format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect")).await;
        let auth_url = res.json()["auth_url"].as_str().expect("auth_url").to_owned();
        let q: BTreeMap<String, String> = Url::parse(&auth_url).expect("url").query_pairs().into_owned().collect();
        assert_eq!(&q["resource"], resource, "each flow asks for its own server's audience");
        let back = consent_in_browser(&auth_url).await;
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
        let res =
            app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("cb");
        assert_eq!(res.status(), StatusCode::OK);
    }
    for server in &servers {
        let check = rt(format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check")).await.json();
        assert_eq!(check["ok"], true, "{check:#}");
    }
    // What each server was shown: only tokens for itself.
    let seen = peers.stats().await["audiences_presented"].clone();
    let audiences =
        |path: &str| -> Vec<String> { seen[path].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default() };
    assert_eq!(audiences("/mcp"), std::slice::from_ref(&peers.mcp_url), "{seen:#}");
    assert_eq!(audiences("/b/mcp"), std::slice::from_ref(&peers.mcp_b_url), "{seen:#}");

    // And the binding is real: A's token, replayed at B by hand, is refused there.
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&servers[0]).expect("id").into(),
    };
    let a_token = app.store().tenant(app.tenant_id).token_set(&key).await.expect("read").expect("tokens");
    let v = switchboard_discovery::mcp::verify(
        app.state.runtime.servers.discoverer().fetcher(),
        &Url::parse(&peers.mcp_b_url).expect("url"),
        &BTreeMap::new(),
        Some(a_token.access_token.expose()),
        &mut Vec::new(),
    )
    .await;
    assert!(!v.ok);
    assert_eq!(v.status, Some(401), "{v:?}");
}
