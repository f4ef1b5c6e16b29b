//! Deleting a tenant and deleting a user's data: every grant concerned is unusable when the API
//! answers, its tokens are revoked at the provider (RFC 7009) by jobs, and then the data is gone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_discovery::Limits;
use switchboard_domain::connection::GrantKey;

use crate::helpers::{Options, TestApp};
use crate::strict_as::{Provider, grant_key, seed_grant, start_provider, strict_server};

struct Setup {
    app: TestApp,
    provider: Arc<Mutex<Provider>>,
    keys: Vec<GrantKey>,
}

/// Two users' grants (`alice`, `bob`) on one server discovered at the strict provider (so its
/// revocation endpoint is known).
async fn setup() -> Setup {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let provider = Arc::new(Mutex::new(Provider::default()));
    let as_base = start_provider(provider.clone());
    let (server, agent) = strict_server(&app, &as_base, true).await;
    let mut keys = Vec::new();
    for (i, user) in ["alice", "bob"].into_iter().enumerate() {
        let key = grant_key(&app, user, &agent, &server);
        seed_grant(
            &app.store().tenant(app.tenant_id),
            &provider,
            &as_base,
            key.clone(),
            i,
            chrono::TimeDelta::hours(1),
        )
        .await;
        keys.push(key);
    }
    Setup { app, provider, keys }
}

fn worker(app: &TestApp) -> switchboard_worker::Worker {
    app.worker_with(Limits { total_timeout: Duration::from_secs(2), ..Limits::default() })
}

/// Runs job passes until `done` holds (the schedule retries after 1 s, 5 s, …).
async fn drain_until(w: &switchboard_worker::Worker, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 30 s");
        w.jobs().tick(10).await.expect("tick");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn deleting_a_tenant_revokes_every_grant_then_purges_it() {
    let s = setup().await;
    let tenant = s.app.tenant_id;

    let res = s.app.admin(Method::DELETE, &format!("/v1/admin/tenants/{tenant}"), None).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
    assert_eq!(res.json()["status"], "deleting");
    assert_eq!(res.json()["grants_revoked"], 2);
    // At once: the tenant's key is refused, its grants hold no token, it takes no new key.
    let refused = s.app.get("/v1/mcp-servers").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    for key in &s.keys {
        assert!(s.app.store().tenant(tenant).token_set(key).await.expect("read").is_none());
    }
    let shown = s.app.admin(Method::GET, &format!("/v1/admin/tenants/{tenant}"), None).await;
    assert!(shown.json()["deleted_at"].is_string(), "{}", shown.text);
    s.app
        .admin(Method::POST, &format!("/v1/admin/tenants/{tenant}/api-keys"), Some(&json!({})))
        .await
        .problem(StatusCode::CONFLICT, "tenant_deleted");
    // Again: harmless.
    let again = s.app.admin(Method::DELETE, &format!("/v1/admin/tenants/{tenant}"), None).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    assert_eq!(again.json()["grants_revoked"], 0);

    // The worker revokes both grants' tokens at the provider, then purges the tenant.
    let w = worker(&s.app);
    drain_until(&w, "the purge", async || {
        s.app.admin(Method::GET, &format!("/v1/admin/tenants/{tenant}"), None).await.status == StatusCode::NOT_FOUND
    })
    .await;
    let mut revoked = s.provider.lock().expect("provider").revoked.clone();
    revoked.sort();
    assert_eq!(
        revoked,
        [
            ("access_token".to_owned(), "at-0-0".to_owned()),
            ("access_token".to_owned(), "at-1-0".to_owned()),
            ("refresh_token".to_owned(), "rt-0-0".to_owned()),
            ("refresh_token".to_owned(), "rt-1-0".to_owned()),
        ],
        "every token revoked at the provider before the tenant went"
    );
    s.app
        .admin(Method::DELETE, &format!("/v1/admin/tenants/{tenant}"), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn deleting_a_users_data_revokes_their_grants_and_forgets_them() {
    let s = setup().await;
    let res = s.app.call(Method::DELETE, "/v1/users/alice", Some(&s.app.key), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json(), json!({"user_id": "alice", "grants_revoked": 1, "connections_deleted": 1}));

    // Alice is forgotten; Bob is untouched.
    let listed = s.app.get("/v1/connections").await.json();
    let users: Vec<&str> =
        listed["data"].as_array().expect("list").iter().filter_map(|c| c["user_id"].as_str()).collect();
    assert_eq!(users, ["bob"]);
    assert_eq!(s.app.get("/v1/connections?user_id=bob").await.json()["data"][0]["status"], "connected");
    let issuances = s.app.get("/v1/issuances?user_id=alice").await.json();
    assert_eq!(issuances["data"], json!([]), "{issuances}");

    // Her tokens, and only hers, are revoked at the provider.
    let w = worker(&s.app);
    drain_until(&w, "alice's revocation", async || s.provider.lock().expect("provider").revoked.len() == 2).await;
    assert_eq!(
        s.provider.lock().expect("provider").revoked,
        [("refresh_token".to_owned(), "rt-0-0".to_owned()), ("access_token".to_owned(), "at-0-0".to_owned())]
    );

    // Another tenant cannot touch Bob; a malformed id is refused, naming the field.
    let (_, other_key) = s.app.other_tenant().await;
    let other = s.app.call(Method::DELETE, "/v1/users/bob", Some(&other_key), None).await;
    assert_eq!(other.json()["grants_revoked"], 0);
    assert_eq!(s.app.get("/v1/connections?user_id=bob").await.json()["data"][0]["status"], "connected");
    let long = "x".repeat(257);
    let bad = s.app.call(Method::DELETE, &format!("/v1/users/{long}"), Some(&s.app.key), None).await;
    bad.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(bad.json()["errors"][0]["field"], "user_id");
}
