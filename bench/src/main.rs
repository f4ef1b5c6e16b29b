//! `switchboard-bench`: drives Switchboard's API with N concurrent HTTP/1.1 keep-alive clients
//! for a fixed time and prints requests/s, p50, p99 and the server's peak RSS. Also seeds servers
//! and measures start-up (time to a ready `/readyz`, idle RSS). See `bench/run.sh` and BENCHMARKS.md.

#![expect(
    clippy::indexing_slicing,
    reason = "a benchmark driver reading answers of the server it just started; not reachable from outside input"
)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod discovery;
mod refresh;
mod runtime;
mod tickets;

#[derive(Parser)]
#[command(name = "switchboard-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify session tickets at each delegation depth (signatures, shape, authority, every
    /// block's checks with a call's arguments): medians in µs, one JSON line per depth.
    Tickets {
        #[arg(long, default_value_t = 2000)]
        runs: usize,
        #[arg(long, default_value_t = 5)]
        max_depth: usize,
    },
    /// Load one path with N keep-alive connections for a fixed time.
    Load {
        /// Base URL of the server, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        /// Path and query to GET, e.g. /v1/mcp-servers?limit=100.
        #[arg(long)]
        path: String,
        /// Tenant API key (omit for public routes).
        #[arg(long, env = "BENCH_API_KEY")]
        key: Option<String>,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Seconds of measured load (after one second of warm-up).
        #[arg(long, default_value_t = 15)]
        duration: u64,
        /// The server's pid, to report its peak RSS (VmHWM).
        #[arg(long)]
        server_pid: Option<u32>,
        /// POST this body (JSON) instead of a GET, e.g. a JSON-RPC `tools/call`.
        #[arg(long)]
        body: Option<String>,
        /// Extra request headers, `name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// A response counts as a success only if its body contains this (e.g. `"result"`).
        #[arg(long)]
        expect: Option<String>,
        /// Each connection first opens an MCP session (`initialize`, `notifications/initialized`,
        /// 2025-11-25) and sends its `Mcp-Session-Id` on every request: for servers and proxies
        /// that only speak the session era.
        #[arg(long)]
        mcp_session: bool,
    },
    /// Register N MCP servers and print the id of the first.
    Seed {
        #[arg(long)]
        url: String,
        #[arg(long, env = "BENCH_API_KEY")]
        key: String,
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// Discovery + registration against local servers delaying every response, per metadata layout.
    Discovery {
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// An agent with 20 attached servers in mixed connection states; prints `{agent_id, ticket}`.
    RuntimeSeed {
        #[arg(long)]
        url: String,
        #[arg(long, env = "BENCH_API_KEY")]
        key: String,
    },
    /// connect → provider → consent callback against an instant in-process authorization server
    /// (the server under test needs SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true to reach it).
    ConnectRoundtrip {
        #[arg(long)]
        url: String,
        #[arg(long, env = "BENCH_API_KEY")]
        key: String,
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Refresh: per-tick cost at growing table sizes, then throughput with N worker processes.
    Refresh {
        /// The switchboard binary (a release build).
        #[arg(long)]
        bin: String,
        /// A Postgres URL allowed to create databases.
        #[arg(long, env = "BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres_url: String,
        /// Table sizes at which the per-tick cost is measured (the last is the size for throughput).
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Grants made due at once for the throughput runs.
        #[arg(long, default_value_t = 20_000)]
        due: usize,
        /// Worker process counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,3")]
        workers: Vec<usize>,
    },
    /// Start `switchboard serve` on a fresh SQLite data dir; report time to ready and idle RSS.
    Startup {
        /// The switchboard binary (a release build).
        #[arg(long)]
        bin: PathBuf,
        #[arg(long, default_value = "127.0.0.1:18181")]
        listen: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Load { url, path, key, connections, duration, server_pid, body, headers, expect, mcp_session } => {
            let request = Request { body, headers, expect, mcp_session };
            load(&url, &path, key.as_deref(), connections, Duration::from_secs(duration), server_pid, &request).await
        }
        Command::Seed { url, key, count } => seed(&url, &key, count).await,
        Command::Startup { bin, listen } => startup(&bin, &listen).await,
        Command::Discovery { delay_ms, runs } => discovery::run(delay_ms, runs).await,
        Command::RuntimeSeed { url, key } => runtime::seed(&url, &key).await,
        Command::Refresh { bin, postgres_url, sizes, due, workers } => {
            refresh::run(&bin, &postgres_url, &sizes, due, &workers).await
        }
        Command::ConnectRoundtrip { url, key, runs } => runtime::connect_roundtrip(&url, &key, runs).await,
        Command::Tickets { runs, max_depth } => tickets::run(runs, max_depth),
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    // One client per connection with a single idle slot: exactly N keep-alive connections.
    Ok(reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).tcp_nodelay(true).build()?)
}

/// What each request of a load run sends, beyond its URL and bearer token.
struct Request {
    body: Option<String>,
    headers: Vec<String>,
    expect: Option<String>,
    mcp_session: bool,
}

/// Opens an MCP session at `target` on `client`'s connection; returns its id.
async fn open_session(
    client: &reqwest::Client,
    target: &str,
    auth: Option<&str>,
    extra: &reqwest::header::HeaderMap,
) -> anyhow::Result<String> {
    let post = |body: serde_json::Value| {
        let mut req = client.post(target).headers(extra.clone()).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req
    };
    let res = post(serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "switchboard-bench", "version": "0"}}}))
    .send()
    .await?;
    let id = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("initialize answered no Mcp-Session-Id")?
        .to_owned();
    res.bytes().await?;
    post(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await?
        .bytes()
        .await?;
    Ok(id)
}

async fn load(
    url: &str,
    path: &str,
    key: Option<&str>,
    connections: usize,
    duration: Duration,
    pid: Option<u32>,
    request: &Request,
) -> anyhow::Result<()> {
    let mut extra = reqwest::header::HeaderMap::new();
    for h in &request.headers {
        let (name, value) = h.split_once(':').context("a header is `name: value`")?;
        extra.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    let target = format!("{url}{path}");
    // Connections (and their MCP sessions) are opened before the clock starts.
    let mut prepared = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = client()?;
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut extra = extra.clone();
        if request.mcp_session {
            let session = open_session(&client, &target, auth.as_deref(), &extra).await?;
            extra.insert("mcp-session-id", reqwest::header::HeaderValue::from_str(&session)?);
            extra.insert("mcp-protocol-version", reqwest::header::HeaderValue::from_static("2025-11-25"));
        }
        prepared.push((client, auth, extra));
    }
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(connections);
    for (client, auth, extra) in prepared {
        let target = target.clone();
        let (body, expect) = (request.body.clone(), request.expect.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let mut req = match &body {
                    Some(b) => client.post(&target).header("content-type", "application/json").body(b.clone()),
                    None => client.get(&target),
                };
                req = req.headers(extra.clone());
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let ok = match req.send().await {
                    Ok(res) if res.status().is_success() => match res.bytes().await {
                        Ok(b) => expect.as_ref().is_none_or(|e| b.windows(e.len()).any(|w| w == e.as_bytes())),
                        Err(_) => false,
                    },
                    _ => false,
                };
                if t0 >= measure_from {
                    if ok {
                        latencies.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[i]) / 1000.0
    };
    let rps = all.len() as f64 / duration.as_secs_f64();
    let rss = pid.and_then(|p| proc_status_kb(p, "VmHWM:"));
    println!(
        "{}",
        serde_json::json!({
            "path": path, "connections": connections, "seconds": duration.as_secs(),
            "requests": all.len(), "errors": errors, "rps": rps.round(),
            "p50_ms": (pct(0.50) * 100.0).round() / 100.0, "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "server_peak_rss_mb": rss.map(|kb| (kb as f64 / 1024.0 * 10.0).round() / 10.0),
        })
    );
    if all.is_empty() {
        bail!("no request succeeded ({errors} errors)");
    }
    Ok(())
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

async fn seed(url: &str, key: &str, count: usize) -> anyhow::Result<()> {
    let client = client()?;
    let mut first = None;
    for i in 0..count {
        let res = client
            .post(format!("{url}/v1/mcp-servers"))
            .bearer_auth(key)
            .json(&serde_json::json!({
                "name": format!("bench server {i}"),
                "config": {"endpoint": format!("https://mcp{i}.example.com/mcp"), "headers": {"X-Bench": "1"},
                           "auth": {"type": "oauth_authorization_code_public_pkce", "scopes": ["read", "write"]}}
            }))
            .send()
            .await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        if !status.is_success() {
            bail!("seeding failed: {status} {body}");
        }
        if first.is_none() {
            first = body["id"].as_str().map(str::to_owned);
        }
    }
    println!("{}", first.context("nothing seeded")?);
    Ok(())
}

async fn startup(bin: &PathBuf, listen: &str) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .args(["serve", "--listen", listen])
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("no pid")?;
    let client = client()?;
    let ready_after = loop {
        if let Ok(res) = client.get(format!("http://{listen}/readyz")).send().await
            && res.status().is_success()
        {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("not ready after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = proc_status_kb(pid, "VmRSS:");
    child.kill().await?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({"ready_ms": ready_after.as_millis(), "idle_rss_mb": idle_rss.map(|kb| (kb as f64 / 1024.0 * 10.0).round() / 10.0)})
    );
    Ok(())
}
