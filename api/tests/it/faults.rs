//! Fault tests (security-reliability.md §4.6) for refresh and revocation, against the strict test
//! provider and real `switchboard worker` processes where a crash is the fault. After each, the
//! "nothing lost" invariants that apply: the stored refresh token is the one the provider holds
//! valid, or the grant is `needs_reauth` with exactly one event (I1); no refresh token was
//! presented twice unless the fault forced it (I2); every job ends done or dead (I5); transient
//! failures never end a grant.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_discovery::Limits;
use switchboard_domain::connection::GrantKey;
use switchboard_worker::refresh::Outcome;

use crate::helpers::{Options, TestApp};
use crate::strict_as::{Fault, Provider, seed_grant, start_provider};

struct Setup {
    app: TestApp,
    provider: Arc<Mutex<Provider>>,
    key: GrantKey,
    connection: uuid::Uuid,
}

/// One grant against the strict provider (discovered, so its revocation endpoint is known), its
/// access token living `life`, due for refresh now.
async fn setup(life: chrono::TimeDelta) -> Setup {
    setup_with(life, Options { allow_private_networks: true, ..Options::default() }).await
}

async fn setup_with(life: chrono::TimeDelta, options: Options) -> Setup {
    let app = TestApp::spawn_with(options).await;
    let provider = Arc::new(Mutex::new(Provider::default()));
    let as_base = start_provider(provider.clone());
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "strict", "config": {"endpoint": format!("{as_base}/mcp"),
            "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "c"}}}),
        )
        .await
        .json();
    assert_eq!(server["discovery_result"]["revocation_url"], format!("{as_base}/revoke"), "{server:#}");
    let agent = app.create_agent("bot").await;
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(server["id"].as_str().expect("id")).expect("id").into(),
    };
    seed_grant(&app.store().tenant(app.tenant_id), &provider, &as_base, key.clone(), 0, life).await;
    crate::refresh::make_due(&app).await;
    let connection =
        uuid::Uuid::parse_str(app.get("/v1/connections").await.json()["data"][0]["id"].as_str().expect("id"))
            .expect("id");
    Setup { app, provider, key, connection }
}

/// A refresher whose token calls give up after `deadline` (the lease stays longer).
fn worker(app: &TestApp, deadline: Duration) -> switchboard_worker::Worker {
    app.worker_with(Limits { total_timeout: deadline, ..Limits::default() })
}

async fn events(s: &Setup) -> Vec<String> {
    s.app
        .store()
        .tenant(s.app.tenant_id)
        .connection_events(s.connection)
        .await
        .expect("events")
        .into_iter()
        .map(|(_, kind, _, _)| kind)
        .collect()
}

async fn status(s: &Setup) -> (String, serde_json::Value) {
    let c = s.app.get(&format!("/v1/connections/{}", s.connection)).await.json();
    (c["status"].as_str().unwrap_or_default().to_owned(), c["last_error"].clone())
}

/// The revocation jobs (each event also queues its delivery job).
async fn revoke_jobs(store: &switchboard_domain::store::TenantStore<'_>) -> Vec<switchboard_domain::store::JobSummary> {
    store.list_jobs().await.expect("jobs").into_iter().filter(|j| j.kind == "revoke_tokens").collect()
}

async fn stored_refresh_token(s: &Setup) -> Option<String> {
    let set = s.app.store().tenant(s.app.tenant_id).token_set(&s.key).await.expect("read")?;
    set.refresh_token.as_ref().map(|r| r.expose().to_owned())
}

/// FLT-06/07/08/12: slow, failing, rate-limiting and garbage token endpoints, and an
/// unresolvable one, are transient: the grant stays connected while its access token lives,
/// retries back off (a `Retry-After` is honoured), one `refresh_failed` event marks the start of
/// the trouble and one `recovered` its end.
#[tokio::test]
async fn transient_token_endpoint_failures_never_end_a_grant() {
    let s = setup(chrono::TimeDelta::hours(1)).await;
    let w = worker(&s.app, Duration::from_millis(500));
    let faults = [
        Fault::Status(503, None),
        Fault::Status(500, None),
        Fault::Status(429, Some(120)),
        Fault::Delay(Duration::from_secs(2)),
        Fault::Garbage("<html>maintenance</html>"),
        Fault::Garbage(r#"{"token_type": "Bearer"}"#),
        Fault::Garbage(r#"{"access_token": "x", "token_type": "mac"}"#),
        Fault::Garbage(r#"{"access_token": "x", "expires_in": -1}"#),
    ];
    for (i, fault) in faults.iter().enumerate() {
        s.provider.lock().expect("provider").token_faults.push_back(fault.clone());
        let report = w.refresher().tick(10).await.expect("tick");
        assert_eq!(report.get(&Outcome::Transient), Some(&1), "{fault:?}: {report:?}");
        let (state, error) = status(&s).await;
        assert_eq!(state, "connected", "{fault:?}: still usable");
        assert_eq!(error["code"], "refresh_failed", "{fault:?}");
        let retry_at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(error["retry_at"].clone()).expect("retry_at");
        let wait = (retry_at - switchboard_domain::clock::now()).num_seconds();
        if matches!(fault, Fault::Status(429, _)) {
            assert!(wait >= 118, "Retry-After honoured: {wait} s");
        } else {
            assert!(wait >= 3, "backs off: {wait} s after failure {i}");
        }
        crate::refresh::make_due(&s.app).await;
    }
    assert_eq!(stored_refresh_token(&s).await.as_deref(), Some("rt-0-0"), "nothing half-written");
    assert_eq!(s.provider.lock().expect("provider").families[0].presentations, 0, "no garbage was taken for tokens");
    // The provider recovers, and so does the grant.
    assert_eq!(w.refresher().tick(10).await.expect("tick").get(&Outcome::Refreshed), Some(&1));
    assert_eq!(status(&s).await.0, "connected");
    assert_eq!(stored_refresh_token(&s).await.as_deref(), Some("rt-0-1"));
    assert_eq!(events(&s).await, ["connection.connected", "connection.refresh_failed", "connection.recovered"]);
    let p = s.provider.lock().expect("provider");
    assert_eq!((p.reuse, p.families[0].revoked), (0, false));
}

/// An access token that expires while its provider is down: the grant is `expired` (not dead),
/// the access-token call answers 503 with Retry-After, and the grant comes back on its own.
#[tokio::test]
async fn an_expired_grant_waits_for_its_provider() {
    let s = setup(chrono::TimeDelta::seconds(-5)).await;
    let w = worker(&s.app, Duration::from_secs(2));
    for _ in 0..2 {
        s.provider.lock().expect("provider").token_faults.push_back(Fault::Status(503, Some(1)));
    }
    assert_eq!(w.refresher().tick(10).await.expect("tick").get(&Outcome::Transient), Some(&1));
    assert_eq!(status(&s).await.0, "expired");
    // The on-demand call tries too (the second scripted 503), then says when to come back.
    let res = s
        .app
        .call(Method::POST, &format!("/v1/connections/{}/access-token", s.connection), Some(&s.app.key), None)
        .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.text);
    assert_eq!(res.header("retry-after"), Some("5"));
    assert!(!res.text.contains("at-0-0"), "an expired token is never handed out");
    crate::refresh::make_due(&s.app).await;
    assert_eq!(w.refresher().tick(10).await.expect("tick").get(&Outcome::Refreshed), Some(&1));
    let res = s
        .app
        .call(Method::POST, &format!("/v1/connections/{}/access-token", s.connection), Some(&s.app.key), None)
        .await;
    assert_eq!(res.json()["access_token"], "at-0-1");
    assert_eq!(events(&s).await, ["connection.connected", "connection.refresh_failed", "connection.recovered"]);
}

/// Runs `switchboard worker` on the test's database until it exits or `deadline` passes.
fn run_worker_process(app: &TestApp, env: &[(&str, &str)], deadline: Duration) -> Option<std::process::ExitStatus> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("worker")
        .env("SWITCHBOARD_DATABASE_URL", &app.database_url)
        .env("SWITCHBOARD_MASTER_KEY", &app.master_key)
        .env("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", "true")
        .env("SWITCHBOARD_DATA_DIR", std::env::temp_dir())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker process");
    let end = Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// FLT-05a: the worker dies between the provider's answer (the refresh token rotated) and the
/// write. With a provider that allows no reuse, the stored token is spent: the next refresh gets
/// `invalid_grant`, re-reads, and ends the grant as `needs_reauth` with exactly one event — never
/// `connected` with a dead token. With a reuse grace window, the grant recovers.
#[tokio::test]
async fn a_crash_after_the_providers_answer_is_never_silent() {
    for grace in [false, true] {
        let s = setup(chrono::TimeDelta::hours(1)).await;
        s.provider.lock().expect("provider").grace = grace;
        let exit = run_worker_process(
            &s.app,
            &[("SWITCHBOARD_FAILPOINTS", "refresh.after_provider_answer"), ("SWITCHBOARD_WORKER_LEASE_SECS", "1")],
            Duration::from_secs(30),
        )
        .expect("the worker crashed at the failpoint");
        assert!(!exit.success(), "aborted");
        assert_eq!(s.provider.lock().expect("provider").families[0].presentations, 1, "the provider rotated");
        assert_eq!(stored_refresh_token(&s).await.as_deref(), Some("rt-0-0"), "the crash lost the new set");
        // The crashed worker's lease lapses; another worker takes over.
        let w = worker(&s.app, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = loop {
            let report = w.refresher().tick(10).await.expect("tick");
            if !report.is_empty() || Instant::now() > deadline {
                break report;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if grace {
            assert_eq!(report.get(&Outcome::Refreshed), Some(&1), "{report:?}");
            assert_eq!(status(&s).await.0, "connected");
            assert_eq!(
                stored_refresh_token(&s).await,
                Some(s.provider.lock().expect("provider").families[0].current.clone())
            );
            assert_eq!(events(&s).await, ["connection.connected", "connection.refreshed"]);
        } else {
            assert_eq!(report.get(&Outcome::NeedsReauth), Some(&1), "{report:?}");
            assert_eq!(status(&s).await.0, "needs_reauth");
            assert_eq!(events(&s).await, ["connection.connected", "connection.reauth_required"]);
            // The event names its finding, for consoles and scripts that act on codes.
            let data = s.app.store().tenant(s.app.tenant_id).connection_events(s.connection).await.expect("events");
            assert_eq!(data[1].2["finding"], "needs_reauth", "{:?}", data[1].2);
            assert_eq!(data[1].2["error"]["code"], "reauth_required");
            crate::refresh::make_due(&s.app).await;
            assert!(w.refresher().tick(10).await.expect("tick").is_empty(), "no second event, no retry loop");
            assert_eq!(events(&s).await, ["connection.connected", "connection.reauth_required"]);
        }
    }
}

/// FLT-14 and SEC-F1: a worker killed while revoking (the provider hangs) leaves the job leased;
/// once the lease lapses another worker runs it again. Revocation retries on 503 with
/// `Retry-After`, revokes the refresh token then the access token, and the job ends `done`.
/// A provider that refuses the client outright dead-letters the job with an event.
#[tokio::test]
async fn revocation_survives_a_killed_worker_and_a_flaky_provider() {
    let s = setup(chrono::TimeDelta::hours(1)).await;
    let store = s.app.store().tenant(s.app.tenant_id);
    store.revoke_connection(&s.key, &switchboard_domain::tenant::Actor::System).await.expect("disconnect");
    assert!(store.token_set(&s.key).await.expect("read").is_none(), "unusable at once");
    s.provider.lock().expect("provider").revoke_faults.push_back(Fault::Delay(Duration::from_secs(60)));
    // A worker process picks the job up and hangs on the provider; it is killed mid-job.
    assert!(
        run_worker_process(&s.app, &[("SWITCHBOARD_WORKER_LEASE_SECS", "2")], Duration::from_secs(3)).is_none(),
        "the worker was still waiting when killed"
    );
    let jobs = revoke_jobs(&store).await;
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("queued", 1), "{jobs:?}");
    {
        let mut p = s.provider.lock().expect("provider");
        p.revoke_faults.clear();
        p.revoke_faults.push_back(Fault::Status(503, Some(1)));
    }
    let w = worker(&s.app, Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        w.jobs().tick(10).await.expect("tick");
        if revoke_jobs(&store).await[0].status == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", revoke_jobs(&store).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let jobs = revoke_jobs(&store).await;
    assert_eq!(jobs[0].attempts, 3, "killed, 503, then done: {jobs:?}");
    let revoked = s.provider.lock().expect("provider").revoked.clone();
    assert_eq!(
        revoked,
        [("refresh_token".to_owned(), "rt-0-0".to_owned()), ("access_token".to_owned(), "at-0-0".to_owned())]
    );

    // A provider that refuses the client: no point retrying.
    let t = setup(chrono::TimeDelta::hours(1)).await;
    let store = t.app.store().tenant(t.app.tenant_id);
    store.revoke_connection(&t.key, &switchboard_domain::tenant::Actor::System).await.expect("disconnect");
    t.provider.lock().expect("provider").revoke_faults.push_back(Fault::Status(401, None));
    worker(&t.app, Duration::from_secs(2)).jobs().tick(10).await.expect("tick");
    let jobs = revoke_jobs(&store).await;
    assert_eq!(jobs[0].status, "dead", "{jobs:?}");
    assert_eq!(events(&t).await, ["connection.connected", "connection.revoked", "job.dead_lettered"]);
}

/// FLT-12: a token endpoint whose name does not resolve is a transient failure like any other:
/// the grant stays usable, the failure is recorded with its cause, the retry is scheduled.
#[tokio::test]
async fn an_unresolvable_token_endpoint_is_transient() {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let provider = Arc::new(Mutex::new(Provider::default()));
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "gone", "config": {"endpoint": "http://127.0.0.1:9/mcp",
            "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "c",
                     "auth_url": "https://as.invalid/authorize", "token_url": "https://as.invalid/token"}}}),
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
    // `.invalid` never resolves (RFC 6761).
    seed_grant(
        &app.store().tenant(app.tenant_id),
        &provider,
        "https://as.invalid",
        key,
        0,
        chrono::TimeDelta::hours(1),
    )
    .await;
    crate::refresh::make_due(&app).await;
    let w = worker(&app, Duration::from_secs(5));
    assert_eq!(w.refresher().tick(10).await.expect("tick").get(&Outcome::Transient), Some(&1));
    let c = app.get("/v1/connections").await.json()["data"][0].clone();
    assert_eq!(c["status"], "connected", "{c:#}");
    assert_eq!(c["last_error"]["code"], "refresh_failed");
    assert!(c["last_error"]["message"].as_str().is_some_and(|m| m.contains("could not be reached")), "{c:#}");
    assert!(w.refresher().tick(10).await.expect("tick").is_empty(), "the retry waits for its time");
}

/// Deleting a server (or an agent) ends its grants in the same transaction and revokes their
/// tokens at the provider, although the server row the job came from is gone by then.
#[tokio::test]
async fn deleting_a_server_revokes_its_grants_at_the_provider() {
    let s = setup(chrono::TimeDelta::hours(1)).await;
    let server = s.key.mcp_server_id;
    let res = s.app.call(Method::DELETE, &format!("/v1/mcp-servers/{server}"), Some(&s.app.key), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    // The grant goes with its server (the row cascades); its tokens are already in the job.
    s.app
        .call(Method::GET, &format!("/v1/connections/{}", s.connection), Some(&s.app.key), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    assert!(s.app.store().tenant(s.app.tenant_id).token_set(&s.key).await.expect("read").is_none());
    let w = worker(&s.app, Duration::from_secs(2));
    w.jobs().tick(10).await.expect("tick");
    let store = s.app.store().tenant(s.app.tenant_id);
    assert_eq!(revoke_jobs(&store).await[0].status, "done");
    let revoked = s.provider.lock().expect("provider").revoked.clone();
    assert_eq!(
        revoked,
        [("refresh_token".to_owned(), "rt-0-0".to_owned()), ("access_token".to_owned(), "at-0-0".to_owned())]
    );
    assert_eq!(events(&s).await, ["connection.connected", "connection.revoked"]);
}

/// FLT-01/02: Redis killed, and paused, while grants are being refreshed. Nothing on the refresh
/// path depends on it (leases, jobs and events are in the database): refreshes and the
/// access-token call go on; only readiness reports it, and recovers without a restart of the app
/// once Redis is back on its port.
#[tokio::test]
async fn redis_killed_or_paused_loses_nothing() {
    use crate::ops::OwnRedis;
    let redis = OwnRedis::start();
    let port = redis.port;
    let s = setup_with(
        chrono::TimeDelta::seconds(30),
        Options {
            allow_private_networks: true,
            redis_url: Some(format!("redis://127.0.0.1:{port}")),
            ..Options::default()
        },
    )
    .await;
    let w = worker(&s.app, Duration::from_secs(2));
    assert_eq!(s.app.call(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);

    // Paused: a refresh pass and the access-token call complete regardless.
    redis.signal("-STOP");
    assert_eq!(w.refresher().tick(10).await.expect("tick").get(&Outcome::Refreshed), Some(&1));
    let token = s
        .app
        .call(Method::POST, &format!("/v1/connections/{}/access-token", s.connection), Some(&s.app.key), None)
        .await;
    assert_eq!(token.json()["access_token"], "at-0-1");
    redis.signal("-CONT");

    // Killed: the same, and readiness says so.
    drop(redis);
    crate::refresh::make_due(&s.app).await;
    assert_eq!(w.refresher().tick(10).await.expect("tick").get(&Outcome::Refreshed), Some(&1));
    assert_eq!(s.app.call(Method::GET, "/readyz", None, None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stored_refresh_token(&s).await.as_deref(), Some("rt-0-2"));

    // Back on its port (empty: it kept nothing): ready again, without restarting the app.
    let _redis = OwnRedis::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.app.call(Method::GET, "/readyz", None, None).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready again after Redis came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = s.provider.lock().expect("provider");
    assert_eq!((p.families[0].presentations, p.reuse), (2, 0), "one refresh per due time, no reuse");
}

/// Finished jobs are purged after a week; dead ones stay for operators.
#[tokio::test]
async fn finished_jobs_are_purged_dead_ones_kept() {
    // A revocation that succeeds (done) and one the provider refuses (dead).
    let (ok, refused) = (setup(chrono::TimeDelta::hours(1)).await, setup(chrono::TimeDelta::hours(1)).await);
    for (s, fault) in [(&ok, None), (&refused, Some(Fault::Status(401, None)))] {
        let store = s.app.store().tenant(s.app.tenant_id);
        store.revoke_connection(&s.key, &switchboard_domain::tenant::Actor::System).await.expect("disconnect");
        if let Some(f) = fault {
            s.provider.lock().expect("provider").revoke_faults.push_back(f);
        }
        worker(&s.app, Duration::from_secs(2)).jobs().tick(10).await.expect("tick");
    }
    async fn status(s: &Setup) -> Vec<String> {
        revoke_jobs(&s.app.store().tenant(s.app.tenant_id)).await.into_iter().map(|j| j.status).collect()
    }
    assert_eq!((status(&ok).await, status(&refused).await), (vec!["done".to_owned()], vec!["dead".to_owned()]));
    // Not yet a week old: nothing goes.
    assert_eq!(
        ok.app
            .store()
            .queue()
            .purge_done_jobs(
                switchboard_domain::clock::now(),
                switchboard_domain::clock::now() - chrono::TimeDelta::days(7)
            )
            .await
            .expect("purge"),
        0
    );
    // As of a week later: the done one goes, the dead one stays.
    let later = switchboard_domain::clock::now() + chrono::TimeDelta::seconds(1);
    assert_eq!(
        ok.app.store().queue().purge_done_jobs(switchboard_domain::clock::now(), later).await.expect("purge"),
        1
    );
    assert_eq!(
        refused.app.store().queue().purge_done_jobs(switchboard_domain::clock::now(), later).await.expect("purge"),
        0
    );
    assert!(status(&ok).await.is_empty());
    assert_eq!(status(&refused).await, ["dead"]);
}

/// A disconnect while a refresh is in flight wins: the refresh's write is fenced and the grant
/// stays revoked (it does not come back `connected` with the new tokens).
#[tokio::test]
async fn a_disconnect_during_a_refresh_is_not_undone() {
    let s = setup(chrono::TimeDelta::hours(1)).await;
    let store = s.app.store().tenant(s.app.tenant_id);
    let due = s
        .app
        .store()
        .queue()
        .claim_due_refreshes(
            "slow-worker",
            switchboard_domain::clock::now(),
            switchboard_domain::clock::now() + chrono::TimeDelta::seconds(30),
            10,
        )
        .await
        .expect("claim");
    assert_eq!(due.len(), 1);
    let row = store.refresh_row(due[0].connection_id).await.expect("row");
    // The user disconnects while the slow worker waits for its provider.
    store.revoke_connection(&s.key, &switchboard_domain::tenant::Actor::System).await.expect("disconnect");
    let fresh = switchboard_domain::connection::TokenSet {
        access_token: switchboard_domain::crypto::Secret::new("at-new".into()),
        refresh_token: Some(switchboard_domain::crypto::Secret::new("rt-new".into())),
        token_type: "Bearer".into(),
        expires_at: Some(switchboard_domain::clock::now() + chrono::TimeDelta::hours(1)),
        scope: None,
    };
    assert!(
        !store.store_refreshed(&row, &fresh, &[], switchboard_domain::clock::now()).await.expect("write"),
        "fenced"
    );
    assert_eq!(status(&s).await.0, "revoked");
    assert!(store.token_set(&s.key).await.expect("read").is_none());
}
