//! `switchboard-bench refresh`: the worker's refresh throughput and the cost of finding due work.
//!
//! On a fresh Postgres database: imports grants in bulk (their refreshes spread over the coming
//! hour), then
//! 1. **per-tick cost** at each table size: the median time of the query that finds 256 due grants
//!    and of one lease claim, with the same 256 due each time — it must stay flat as the table
//!    grows (the due-time index);
//! 2. **throughput**: makes `due` grants due now, starts `workers` `switchboard worker` processes
//!    against an in-process authorization server that answers at once, and times until every due
//!    grant was refreshed — refreshes per second, for one worker and for three.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context as _, bail};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;
use switchboard_domain::connection::{GrantKey, TokenSet};
use switchboard_domain::crypto::{Envelope, Secret};
use switchboard_domain::store::{ImportedGrant, Store, StoreOptions};
use switchboard_domain::tenant::{Actor, TenantSpec};

/// An authorization server that refreshes at once, counting.
fn fast_provider(count: Arc<AtomicU64>) -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = HttpServer::new(move || {
        let count = count.clone();
        App::new().route(
            "/token",
            web::post().to(move |_body: web::Bytes| {
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    HttpResponse::Ok().json(json!({"access_token": format!("at-{n}"), "token_type": "Bearer",
                        "expires_in": 3600, "refresh_token": format!("rt-{n}")}))
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(base)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[expect(clippy::too_many_lines, reason = "one benchmark, step by step")]
pub async fn run(bin: &str, admin_url: &str, sizes: &[usize], due: usize, workers: &[usize]) -> anyhow::Result<()> {
    // A fresh database, migrated by the binary under test.
    let admin = Database::connect(admin_url).await.context("connect to Postgres")?;
    let name = "switchboard_bench_refresh";
    for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        admin.execute(Statement::from_string(admin.get_database_backend(), sql)).await?;
    }
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let master_key = Envelope::generate_base64()?;
    let status = tokio::process::Command::new(bin)
        .arg("migrate")
        .env("SWITCHBOARD_DATABASE_URL", &url)
        .env("SWITCHBOARD_MASTER_KEY", &master_key)
        .env("RUST_LOG", "warn")
        .status()
        .await?;
    if !status.success() {
        bail!("migrate failed");
    }
    let store = Store::connect(&url, Envelope::from_base64(&master_key)?, &StoreOptions::default()).await?;
    let (tenant, _) =
        store.admin().create_tenant(&Actor::System, TenantSpec { name: "bench".into(), slug: None }).await?;
    let t = store.tenant(tenant.id);
    let count = Arc::new(AtomicU64::new(0));
    let as_base = fast_provider(count.clone())?;
    let spec = switchboard_domain::mcp_server::validate_create(
        switchboard_domain::validate::Policy { allow_private_networks: true },
        &json!({"name": "bench", "config": {"endpoint": "http://127.0.0.1:9/mcp", "auth": {"type": "oauth_authorization_code_public_pkce",
            "client_id": "bench", "auth_url": format!("{as_base}/authorize"), "token_url": format!("{as_base}/token")}}}),
    )?;
    let server = t.create_mcp_server(&Actor::System, spec).await?;
    let agent = t
        .create_agent(
            &Actor::System,
            switchboard_domain::agent::AgentSpec { name: "bench".into(), slug: None, description: None },
        )
        .await?;
    let now = switchboard_domain::clock::now();
    let grant = |i: usize, next: chrono::DateTime<chrono::Utc>| ImportedGrant {
        key: GrantKey { tenant_id: tenant.id, user_id: format!("u{i}"), agent_id: agent.id, mcp_server_id: server.id },
        tokens: TokenSet {
            access_token: Secret::new(format!("at-{i}")),
            refresh_token: Some(Secret::new(format!("rt-{i}"))),
            token_type: "Bearer".into(),
            expires_at: Some(now + chrono::TimeDelta::hours(1)),
            scope: None,
        },
        issuer: as_base.clone(),
        token_endpoint: format!("{as_base}/token"),
        resource: "http://127.0.0.1:9/mcp".into(),
        scopes: vec![],
        next_refresh_at: Some(next),
    };
    // The first 256 are due now and stay due during the per-tick measurement; the rest are due
    // over the coming hour (spread evenly, starting a minute from now).
    let mut imported = 0;
    for &size in sizes {
        let started = Instant::now();
        let batch: Vec<ImportedGrant> = (imported..size)
            .map(|i| {
                let next = if i < 256 {
                    now - chrono::TimeDelta::seconds(1)
                } else {
                    now + chrono::TimeDelta::seconds(60 + i64::try_from(i % 3540).unwrap_or(0))
                };
                grant(i, next)
            })
            .collect();
        for chunk in batch.chunks(10_000) {
            t.import_grants(chunk).await?;
        }
        imported = size;
        store
            .database()
            .execute(Statement::from_string(store.database().get_database_backend(), "ANALYZE connections"))
            .await?;
        let mut find = Vec::new();
        let mut claim = Vec::new();
        for _ in 0..21 {
            let t0 = Instant::now();
            let found = store.queue().due_refreshes(switchboard_domain::clock::now(), 256).await?;
            find.push(t0.elapsed().as_secs_f64() * 1000.0);
            if found.len() != 256 {
                bail!("expected 256 due, found {}", found.len());
            }
            // One claim, then released by a failed attempt-free reset (claims are by version).
            let d = found[0];
            let t1 = Instant::now();
            let now = switchboard_domain::clock::now();
            store.tenant(d.tenant_id).claim_refresh(d.connection_id, d.version, "bench", now, now).await?;
            claim.push(t1.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "{}",
            json!({"measure": "per_tick", "connections": size, "due": 256, "import_seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                   "find_due_ms_median": (median(find) * 1000.0).round() / 1000.0, "claim_ms_median": (median(claim) * 1000.0).round() / 1000.0})
        );
    }

    for &n in workers {
        // Make the first `due` grants due now.
        let sql = format!(
            "UPDATE connections SET next_refresh_at = now() - interval '1 second', lease_until = NULL \
             WHERE id IN (SELECT id FROM connections ORDER BY id LIMIT {due})"
        );
        store.database().execute(Statement::from_string(store.database().get_database_backend(), sql)).await?;
        let before = count.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut children = Vec::new();
        for i in 0..n {
            children.push(
                tokio::process::Command::new(bin)
                    .arg("worker")
                    .env("SWITCHBOARD_DATABASE_URL", &url)
                    .env("SWITCHBOARD_MASTER_KEY", &master_key)
                    .env("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", "true")
                    .env("SWITCHBOARD_DATABASE_MAX_CONNECTIONS", "8")
                    .env("HOSTNAME", format!("bench-{i}"))
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        let target = before + u64::try_from(due).unwrap_or(u64::MAX);
        let deadline = Instant::now() + Duration::from_secs(600);
        while count.load(Ordering::Relaxed) < target {
            if Instant::now() > deadline {
                bail!("only {} of {due} refreshed in 600 s", count.load(Ordering::Relaxed) - before);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        for mut c in children {
            let _ = c.kill().await;
        }
        let refreshed = count.load(Ordering::Relaxed) - before;
        println!(
            "{}",
            json!({"measure": "throughput", "connections": imported, "workers": n, "refreshed": refreshed,
                   "seconds": (secs * 100.0).round() / 100.0, "refreshes_per_second": (refreshed as f64 / secs).round(),
                   "note": "includes process start-up (~0.1 s)"})
        );
    }
    drop(store);
    admin
        .execute(Statement::from_string(
            admin.get_database_backend(),
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ))
        .await?;
    Ok(())
}
