//! Many workers, one refresh per grant: three `switchboard worker` processes on the same database
//! (and Redis, when the suite has one) and 500 grants due at once, against an authorization
//! server with strict refresh-token rotation and reuse detection (presenting a spent refresh token
//! revokes the whole family). It counts every presentation.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_domain::crypto::Secret;

use crate::helpers::{Options, TestApp};
use crate::strict_as::{Provider, seed_grant, start_provider};

const GRANTS: usize = 500;

/// Worker processes, killed when dropped.
pub struct Workers(pub Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_refresh_each_grant_exactly_once() {
    race(GRANTS, [0, 0, 0], None).await;
}

/// FLT-16, clocks: the three workers' host clocks are five minutes off (two behind, one ahead) and access tokens live two minutes — shorter than the skew. Leases and schedules
/// are measured on the database's clock, so the worker ahead cannot take a live lease, and the
/// worker behind cannot schedule a refresh in its peers' past (which would loop): still exactly
/// one refresh per grant, and none again for the token's life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_clocks_minutes_apart_still_refresh_each_grant_once() {
    race(200, [-300, -300, 300], Some(120)).await;
}

/// `grants` grants due at once, three worker processes whose clocks are off by `skews` seconds,
/// a provider issuing access tokens for `expires_in` seconds.
async fn race(grants: usize, skews: [i64; 3], expires_in: Option<u64>) {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let provider = Arc::new(Mutex::new(Provider { expires_in, ..Provider::default() }));
    let as_base = start_provider(provider.clone());
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "strict", "config": {"endpoint": "http://127.0.0.1:9/mcp",
            "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "race-client",
                     "auth_url": format!("{as_base}/authorize"), "token_url": format!("{as_base}/token")}}}),
        )
        .await
        .id();
    let agent = app.create_agent("bot").await;
    let store = app.store().tenant(app.tenant_id);
    // 500 grants, each with refresh token rt-<i>-0, all due now (their access tokens expire in 1 s).
    for i in 0..grants {
        let key = switchboard_domain::connection::GrantKey {
            tenant_id: app.tenant_id,
            user_id: format!("user-{i}"),
            agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
            mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
        };
        seed_grant(&store, &provider, &as_base, key, i, chrono::TimeDelta::seconds(1)).await;
    }

    // Overdue by more than the skew, so that every worker sees them due, the one behind included.
    crate::refresh::make_due_at(&app, switchboard_domain::clock::now() - chrono::TimeDelta::minutes(10)).await;

    let spawn = |n: usize| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("worker")
            .env("SWITCHBOARD_DATABASE_URL", &app.database_url)
            .env("SWITCHBOARD_MASTER_KEY", &app.master_key)
            .env("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", "true")
            .env("SWITCHBOARD_DATA_DIR", std::env::temp_dir())
            .env("RUST_LOG", "warn")
            .env("HOSTNAME", format!("race-worker-{n}"))
            .env("SWITCHBOARD_TEST_CLOCK_SKEW_SECS", skews[n].to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().expect("start a worker process")
    };
    let workers = Workers((0..3).map(spawn).collect());

    // Poll (with a deadline) until every grant has been refreshed once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = provider.lock().expect("provider").families.iter().filter(|f| f.presentations > 0).count();
        if done == grants {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {grants} grants were refreshed within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let any straggling duplicate (or a refresh scheduled in the past) show itself before counting.
    tokio::time::sleep(Duration::from_secs(if skews == [0, 0, 0] { 2 } else { 6 })).await;
    drop(workers);

    let (twice, reuse, revoked, current) = {
        let p = provider.lock().expect("provider");
        let twice: Vec<usize> = (0..grants).filter(|&i| p.families[i].presentations != 1).collect();
        let current: Vec<String> = p.families.iter().map(|f| f.current.clone()).collect();
        (twice, p.reuse, p.families.iter().filter(|f| f.revoked).count(), current)
    };
    assert!(twice.is_empty(), "grants refreshed more than once: {twice:?}");
    assert_eq!(reuse, 0, "no spent refresh token was ever presented again");
    assert_eq!(revoked, 0, "no family revoked");
    // Every grant is connected and holds exactly the refresh token the provider considers valid.
    for (i, current) in current.iter().enumerate() {
        let key = switchboard_domain::connection::GrantKey {
            tenant_id: app.tenant_id,
            user_id: format!("user-{i}"),
            agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
            mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
        };
        let stored = store.token_set(&key).await.expect("read").expect("tokens");
        assert_eq!(stored.refresh_token.as_ref().map(Secret::expose), Some(current.as_str()), "grant {i}");
    }
    let listed = app.get("/v1/connections?status=connected&limit=100").await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(100));
    assert!(app.get("/v1/connections?status=needs_reauth").await.json()["data"].as_array().is_some_and(Vec::is_empty));
}
