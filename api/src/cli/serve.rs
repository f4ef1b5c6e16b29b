//! `switchboard serve`: the HTTP API, and by default the worker in the same process.

use anyhow::Context as _;
use clap::Args;
use switchboard_domain::crypto::Secret;

use super::common::{StoreArgs, WorkerKnobs, open, shutdown_signal};
use crate::config::Settings;
use crate::{app, bootstrap, state::AppState};

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) store: StoreArgs,
    #[command(flatten)]
    pub(super) knobs: WorkerKnobs,
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub(super) listen: std::net::SocketAddr,
    /// Base URL of this deployment as browsers and providers reach it.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL", default_value = "http://localhost:8080")]
    pub(super) public_url: String,
    /// Redis URL; in-process state when unset.
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub(super) redis_url: Option<String>,
    /// Prefix of every Redis key (share one Redis between deployments).
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX", default_value = "switchboard")]
    pub(super) redis_prefix: String,
    /// Platform admin bearer token for /v1/admin/*; the admin API is disabled when unset.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub(super) admin_token: Option<String>,
    /// Let outbound calls and http:// URLs reach loopback and private addresses (development and tests only).
    #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub(super) allow_private_networks: bool,
    /// Comma-separated CIDRs and host names that outbound calls may reach even when private (operator-only).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
    pub(super) outbound_allowlist: String,
    /// Run the worker inside this process.
    #[arg(long, env = "SWITCHBOARD_RUN_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub(super) run_worker: bool,
    /// Do not apply migrations on start.
    #[arg(long)]
    pub(super) no_migrate: bool,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SWITCHBOARD_HTTP_WORKERS")]
    pub(super) http_workers: Option<usize>,
    /// Database pool size.
    #[arg(long, env = "SWITCHBOARD_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub(super) database_max_connections: u32,
    /// Seconds a request may take before it is answered 503 `request_timeout` (a database that
    /// stopped answering holds a statement until then).
    #[arg(long, env = "SWITCHBOARD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub(super) request_timeout_secs: u64,
    /// Seconds the MCP gateway waits for an upstream server's answer to begin (kept under the
    /// request deadline); a slower upstream is a JSON-RPC error.
    #[arg(long, env = "SWITCHBOARD_GATEWAY_UPSTREAM_TIMEOUT_SECS", default_value_t = 25)]
    pub(super) gateway_upstream_timeout_secs: u64,
    /// Seconds a streamed answer to one MCP gateway request may last in all, however often the
    /// upstream reports progress (silence longer than the upstream timeout ends it sooner).
    #[arg(long, env = "SWITCHBOARD_GATEWAY_CALL_TIMEOUT_SECS", default_value_t = 600)]
    pub(super) gateway_call_timeout_secs: u64,
    /// Comma-separated browser origins the MCP gateway serves besides the public URL's own
    /// (an `Origin` outside them is a 403, the spec's DNS-rebinding defence).
    #[arg(long, env = "SWITCHBOARD_GATEWAY_ALLOWED_ORIGINS", default_value = "")]
    pub(super) gateway_allowed_origins: String,
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = open(&args.store, args.database_max_connections).await?;
    if args.no_migrate {
        tracing::info!("skipping migrations (--no-migrate)");
    } else {
        bootstrap::migrate(&store).await?;
    }
    bootstrap::default_tenant(&store, &args.store.data_dir).await?;
    let settings = Settings {
        database_url: args.store.database_url.clone(),
        redis_url: args.redis_url.clone(),
        listen: args.listen,
        public_url: args.public_url.trim_end_matches('/').to_owned(),
        admin_token: args.admin_token.filter(|t| !t.is_empty()).map(Secret::new),
        allow_private_networks: args.allow_private_networks,
        outbound_allowlist: args.outbound_allowlist.clone(),
        data_dir: args.store.data_dir.clone(),
        redis_prefix: args.redis_prefix.clone(),
        request_timeout: std::time::Duration::from_secs(args.request_timeout_secs.max(1)),
        gateway_upstream_timeout: std::time::Duration::from_secs(args.gateway_upstream_timeout_secs.max(1)),
        gateway_call_timeout: std::time::Duration::from_secs(args.gateway_call_timeout_secs.max(1)),
        gateway_allowed_origins: args
            .gateway_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let redis = settings
        .redis_url
        .as_deref()
        .map(|url| crate::redis::RedisHandle::new(url, &settings.redis_prefix))
        .transpose()?;
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let workers =
        args.http_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get));
    let config = crate::state::runtime_config(&settings, args.knobs.config())?;
    let runtime = switchboard_worker::runtime::Runtime::new(store, config)?;
    let state = AppState::with_runtime(runtime.clone(), settings, redis)?;
    let server = app::serve(state, listener, workers)?;
    tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "switchboard listening");
    // The worker stops on the same signal as the server.
    let worker = if args.run_worker { Some(tokio::spawn(runtime.worker().run(shutdown_signal()))) } else { None };
    server.await.context("the HTTP server failed")?;
    if let Some(w) = worker {
        w.abort();
    }
    // The last seconds of health counters.
    if let Err(e) = runtime.health.flush().await {
        tracing::warn!(error = %switchboard_domain::error::chain(&e), "the last write of health counters failed");
    }
    Ok(())
}
