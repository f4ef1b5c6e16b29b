//! FLT-17, the long soak — not in the fast set: `scripts/soak [SECONDS]` runs it (the test is
//! `#[ignore]`d otherwise). Three `switchboard worker` processes on a Postgres of the test's own
//! keep 200 grants fresh (access tokens live 20 s, so each is refreshed about every 16 s) against
//! the strict provider with a reuse grace window, while every 5–15 s one fault strikes at random:
//! a worker killed (`SIGKILL`) and restarted, Postgres paused for 5 s, Postgres crashed and
//! restarted, the token endpoint answering 503s, slowly, or with garbage.
//!
//! Checked throughout: no refresh-token family is ever revoked, and a spent refresh token is
//! presented again only in a round where a worker was killed (the one residual window: a process
//! dying between the provider's answer and the write). At the end, after the faults stop: every
//! grant is connected and holds the provider's current refresh token, the access-token call
//! answers, and the one worker never killed kept its memory and open files flat.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_domain::crypto::Secret;

use crate::helpers::{Options, TestApp};
use crate::pg_faults::OwnPostgres;
use crate::race::Workers;
use crate::strict_as::{Fault, Provider, grant_key, seed_grant, start_provider, strict_server};

const GRANTS: usize = 200;

fn random(below: u64) -> u64 {
    let b = uuid::Uuid::new_v4();
    u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes")) % below
}

fn spawn_worker(app: &TestApp, n: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("worker")
        .env("SWITCHBOARD_DATABASE_URL", &app.database_url)
        .env("SWITCHBOARD_MASTER_KEY", &app.master_key)
        .env("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", "true")
        .env("SWITCHBOARD_DATA_DIR", std::env::temp_dir())
        .env("HOSTNAME", format!("soak-worker-{n}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker process")
}

/// (resident KiB, open files) of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0);
    (rss, fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long soak (minutes): scripts/soak [SECONDS]"]
async fn refreshes_survive_random_faults_for_as_long_as_asked() {
    let secs: u64 = std::env::var("SWITCHBOARD_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut pg = OwnPostgres::start();
    let app = TestApp::spawn_with(Options {
        allow_private_networks: true,
        postgres_admin_url: Some(pg.admin_url()),
        ..Options::default()
    })
    .await;
    let provider = Arc::new(Mutex::new(Provider { grace: true, expires_in: Some(20), ..Provider::default() }));
    let as_base = start_provider(provider.clone());
    let (server, agent) = strict_server(&app, &as_base, false).await;
    let store = app.store().tenant(app.tenant_id);
    let mut keys = Vec::new();
    for i in 0..GRANTS {
        let key = grant_key(&app, &format!("user-{i}"), &agent, &server);
        seed_grant(&store, &provider, &as_base, key.clone(), i, chrono::TimeDelta::seconds(20)).await;
        keys.push(key);
    }
    let mut workers = Workers((0..3).map(|n| spawn_worker(&app, n)).collect());
    let steady = workers.0[0].id();
    tokio::time::sleep(Duration::from_secs(60.min(secs / 4))).await;
    let baseline = footprint(steady);

    let end = Instant::now() + Duration::from_secs(secs);
    let (mut rounds, mut kills) = (0, 0);
    while Instant::now() < end {
        let grace_before = provider.lock().expect("provider").grace_uses;
        let mut killed = false;
        match random(6) {
            0 => {
                let n = 1 + usize::try_from(random(2)).expect("small");
                let _ = workers.0[n].kill();
                let _ = workers.0[n].wait();
                workers.0[n] = spawn_worker(&app, n);
                (killed, kills) = (true, kills + 1);
            }
            1 => {
                let frozen = pg.pause();
                tokio::time::sleep(Duration::from_secs(5)).await;
                OwnPostgres::resume(&frozen);
            }
            2 => {
                pg.crash();
                tokio::time::sleep(Duration::from_secs(2)).await;
                pg.restart();
            }
            3 => provider.lock().expect("provider").token_faults.extend((0..20).map(|_| Fault::Status(503, None))),
            4 => provider
                .lock()
                .expect("provider")
                .token_faults
                .extend((0..20).map(|_| Fault::Delay(Duration::from_secs(3)))),
            _ => provider.lock().expect("provider").token_faults.extend((0..20).map(|_| Fault::Garbage("<html>"))),
        }
        tokio::time::sleep(Duration::from_secs(5 + random(10))).await;
        rounds += 1;
        let p = provider.lock().expect("provider");
        assert_eq!(p.families.iter().filter(|f| f.revoked).count(), 0, "round {rounds}: a family was revoked");
        if !killed {
            assert_eq!(p.grace_uses, grace_before, "round {rounds}: a spent refresh token was presented again");
        }
    }

    // The faults stop; within one token life every grant is fresh again.
    provider.lock().expect("provider").token_faults.clear();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let current: Vec<String> =
            provider.lock().expect("provider").families.iter().map(|f| f.current.clone()).collect();
        let mut behind = Vec::new();
        for (key, current) in keys.iter().zip(&current) {
            let stored = store.token_set(key).await.ok().flatten();
            if stored.as_ref().and_then(|s| s.refresh_token.as_ref()).map(Secret::expose) != Some(current.as_str()) {
                behind.push(key.user_id.clone());
            }
        }
        let connected =
            app.get("/v1/connections?status=connected&limit=100").await.json()["data"].as_array().map_or(0, Vec::len);
        if behind.is_empty() && connected == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "after the soak, grants off the provider's current token: {behind:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let listed = app.get("/v1/connections?status=needs_reauth").await.json();
    assert_eq!(listed["data"], json!([]), "no grant ended");
    let some = app.get("/v1/connections?limit=1").await.json()["data"][0]["id"].as_str().expect("id").to_owned();
    let res = app.call(Method::POST, &format!("/v1/connections/{some}/access-token"), Some(&app.key), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    let after = footprint(steady);
    let p = provider.lock().expect("provider");
    let refreshes: u32 = p.families.iter().map(|f| f.presentations).sum();
    eprintln!(
        "soak: {secs} s, {rounds} fault rounds ({kills} worker kills), {refreshes} refreshes, {} grace uses; \
         steady worker {} → {} KiB, {} → {} open files",
        p.grace_uses, baseline.0, after.0, baseline.1, after.1
    );
    assert!(after.0 <= baseline.0 * 2 + 8 * 1024, "the steady worker's memory grew: {baseline:?} → {after:?}");
    assert!(after.1 <= baseline.1 * 2 + 16, "the steady worker's open files grew: {baseline:?} → {after:?}");
}
