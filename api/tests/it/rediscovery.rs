//! The daily background rediscovery: due servers are queued by the worker's housekeeping and
//! probed again by a job. A provider's bad minute keeps the last good discovery; a server that
//! moved to another authorization server gets the new one, and its grants pinned to the old one
//! go to `needs_reauth` — their refresh tokens are sent to neither.

use std::sync::{Arc, Mutex};

use serde_json::json;
use switchboard_domain::connection::GrantKey;

use crate::helpers::{Options, TestApp};
use crate::strict_as::{Provider, seed_grant, start_provider};

async fn make_rediscovery_due(app: &TestApp) {
    let when = switchboard_domain::clock::now() - chrono::TimeDelta::minutes(1);
    switchboard_domain::store::testing::make_rediscoveries_due(app.store(), app.tenant_id, when)
        .await
        .expect("make due");
}

async fn rediscover_jobs(app: &TestApp) -> Vec<String> {
    let jobs = app.store().tenant(app.tenant_id).list_jobs().await.expect("jobs");
    jobs.into_iter().filter(|j| j.kind == "rediscover_server").map(|j| j.status).collect()
}

#[tokio::test]
async fn rediscovery_follows_a_moved_authorization_server_and_keeps_the_last_good_one() {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let a = Arc::new(Mutex::new(Provider::default()));
    let a_base = start_provider(a.clone());
    let b = Arc::new(Mutex::new(Provider::default()));
    let b_base = start_provider(b.clone());
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "moving", "config": {"endpoint": format!("{a_base}/mcp"),
            "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "c"}}}),
        )
        .await
        .json();
    let server_id = server["id"].as_str().expect("id").to_owned();
    assert_eq!(server["discovery_result"]["issuer"], a_base);
    let agent = app.create_agent("bot").await;
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server_id).expect("id").into(),
    };
    seed_grant(&app.store().tenant(app.tenant_id), &a, &a_base, key, 0, chrono::TimeDelta::hours(1)).await;
    let worker = app.worker();

    // A new server is not due for a day.
    worker.housekeeping().await;
    assert!(rediscover_jobs(&app).await.is_empty());

    // The resource metadata names an authorization server that does not answer: the job runs,
    // and the stored discovery (and the grant) stay as they were.
    a.lock().expect("provider").authorization_server = Some("http://127.0.0.1:9".into());
    make_rediscovery_due(&app).await;
    worker.housekeeping().await;
    worker.housekeeping().await;
    assert_eq!(rediscover_jobs(&app).await, ["queued"], "queued once, its due time moved a day ahead");
    worker.jobs().tick(10).await.expect("tick");
    assert_eq!(rediscover_jobs(&app).await, ["done"]);
    let kept = app.get(&format!("/v1/mcp-servers/{server_id}")).await.json();
    assert_eq!(kept["discovery_result"]["issuer"], a_base, "the last good discovery is kept");
    assert_eq!(kept["config"]["auth"]["token_url"], format!("{a_base}/token"));
    assert_eq!(app.get("/v1/connections").await.json()["data"][0]["status"], "connected");

    // The server moved to another authorization server: the new one is recorded, and the grant
    // pinned to the old one needs a new consent — one event, no token sent anywhere.
    a.lock().expect("provider").authorization_server = Some(b_base.clone());
    make_rediscovery_due(&app).await;
    worker.housekeeping().await;
    worker.jobs().tick(10).await.expect("tick");
    let moved = app.get(&format!("/v1/mcp-servers/{server_id}")).await.json();
    assert_eq!(moved["discovery_result"]["issuer"], b_base, "{moved:#}");
    assert_eq!(moved["config"]["auth"]["token_url"], format!("{b_base}/token"));
    let connection = app.get("/v1/connections").await.json()["data"][0].clone();
    assert_eq!(connection["status"], "needs_reauth", "{connection:#}");
    assert!(connection["last_error"]["message"].as_str().is_some_and(|m| m.contains(&b_base)), "{connection:#}");
    let id = uuid::Uuid::parse_str(connection["id"].as_str().expect("id")).expect("id");
    let events: Vec<String> = app
        .store()
        .tenant(app.tenant_id)
        .connection_events(id)
        .await
        .expect("events")
        .into_iter()
        .map(|(_, kind, _, _)| kind)
        .collect();
    assert_eq!(events, ["connection.connected", "connection.reauth_required"]);
    assert_eq!(a.lock().expect("provider").families[0].presentations, 0, "no refresh at the old server");
    assert!(b.lock().expect("provider").tokens.is_empty() && b.lock().expect("provider").reuse == 0);
}
