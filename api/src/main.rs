//! The `switchboard` binary.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use switchboard_api::config::{Settings, load_master_key};
use switchboard_api::telemetry::{self, LogFormat};
use switchboard_api::{app, bootstrap, state::AppState};
use switchboard_domain::crypto::Secret;
use switchboard_domain::store::{Store, StoreOptions};
use switchboard_domain::tenant::Actor;

/// Switchboard: the control plane that connects AI agents to remote MCP servers.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API (and, by default, run the worker in the same process).
    Serve(ServeArgs),
    /// Run the background worker on its own (for the production shape: API and workers apart).
    Worker(WorkerArgs),
    /// Apply pending database migrations, then exit.
    Migrate(StoreArgs),
    /// Discover how an MCP server wants to be authorized, and print what was found (nothing is saved).
    Discover {
        /// The MCP server's Streamable HTTP URL.
        url: String,
        /// Print the discovery_result JSON instead of the report.
        #[arg(long)]
        json: bool,
        /// Allow loopback and private addresses (development only).
        #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::SetTrue)]
        allow_private_network: bool,
        /// Comma-separated CIDRs and host names outbound calls may reach despite the policy.
        #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
        outbound_allowlist: String,
    },
    /// Connect to an MCP server as a client would — discovery, registration, authorization,
    /// initialize, tools/list, optionally a tool call — and report what worked.
    Client(switchboard_api::cli_client::ClientArgs),
    /// Print the OpenAPI document (or write it to a file).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Administer tenants and API keys from the command line (e.g. the first tenant of a fresh install).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args, Debug, Clone)]
struct StoreArgs {
    /// Database URL: sqlite://… (embedded) or postgres://….
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://./data/switchboard.db?mode=rwc",
        global = true
    )]
    database_url: String,
    /// Directory for the SQLite file, the generated master key and the bootstrap key.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Base64 32-byte key-encryption key; a 0600 key file in the data directory when unset.
    #[arg(long, env = "SWITCHBOARD_MASTER_KEY", hide_env_values = true, global = true)]
    master_key: Option<String>,
}

/// The background worker's knobs, shared by `serve` (its in-process worker) and `worker`.
#[derive(Args, Debug, Clone)]
struct WorkerKnobs {
    /// How long a worker's claim on a refresh or a job lasts, in seconds (above the 10 s provider
    /// deadline).
    #[arg(long, env = "SWITCHBOARD_WORKER_LEASE_SECS", default_value_t = 30)]
    worker_lease_secs: u64,
    /// How often the worker looks for due work when nothing wakes it, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_WORKER_POLL_MS", default_value_t = 1000, hide = true)]
    worker_poll_ms: u64,
    /// The first part of the name that marks this worker's leases (the host name by default).
    #[arg(long, env = "HOSTNAME", default_value = "worker", hide_env_values = true)]
    worker_name: String,
}

impl WorkerKnobs {
    fn config(&self) -> switchboard_worker::runtime::WorkerConfig {
        switchboard_worker::runtime::WorkerConfig {
            // The process id and a random part keep two processes on one host apart.
            name: format!("{}:{}:{}", self.worker_name, std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: std::time::Duration::from_secs(self.worker_lease_secs),
            poll: std::time::Duration::from_millis(self.worker_poll_ms),
        }
    }
}

#[derive(Args, Debug)]
struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    knobs: WorkerKnobs,
    /// Let outbound calls reach loopback and private addresses (development and tests only).
    #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set)]
    allow_private_networks: bool,
    /// Comma-separated CIDRs and host names that outbound calls may reach even when private.
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
    outbound_allowlist: String,
    /// Database pool size.
    #[arg(long, env = "SWITCHBOARD_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    database_max_connections: u32,
    /// Base URL of the deployment (as `serve` has it): rediscovery registers clients with
    /// redirect URIs under it, so without it this worker runs no rediscovery.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    public_url: Option<String>,
    /// Redis URL: the API wakes workers through it when it queues work (they poll every second
    /// without it).
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of every Redis key and channel (as `serve` has it).
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX", default_value = "switchboard")]
    redis_prefix: String,
}

/// The outbound policy, as configured.
fn network(allow_private_networks: bool, allowlist: &str) -> anyhow::Result<switchboard_discovery::NetworkPolicy> {
    switchboard_discovery::NetworkPolicy { allow_private_networks, allow: vec![] }
        .with_allowlist(allowlist)
        .map_err(|e| anyhow::anyhow!("SWITCHBOARD_OUTBOUND_ALLOWLIST: {e}"))
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    knobs: WorkerKnobs,
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Base URL of this deployment as browsers and providers reach it.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL", default_value = "http://localhost:8080")]
    public_url: String,
    /// Redis URL; in-process state when unset.
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of every Redis key (share one Redis between deployments).
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX", default_value = "switchboard")]
    redis_prefix: String,
    /// Platform admin bearer token for /v1/admin/*; the admin API is disabled when unset.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Let outbound calls and http:// URLs reach loopback and private addresses (development and tests only).
    #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set)]
    allow_private_networks: bool,
    /// Comma-separated CIDRs and host names that outbound calls may reach even when private (operator-only).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
    outbound_allowlist: String,
    /// Run the worker inside this process.
    #[arg(long, env = "SWITCHBOARD_RUN_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    run_worker: bool,
    /// Do not apply migrations on start.
    #[arg(long)]
    no_migrate: bool,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "SWITCHBOARD_HTTP_WORKERS")]
    http_workers: Option<usize>,
    /// Database pool size.
    #[arg(long, env = "SWITCHBOARD_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    database_max_connections: u32,
    /// Seconds a request may take before it is answered 503 `request_timeout` (a database that
    /// stopped answering holds a statement until then).
    #[arg(long, env = "SWITCHBOARD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Tenant API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Consent grants (connections).
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Token issuance records.
    Issuance {
        #[command(subcommand)]
        command: IssuanceCommand,
    },
}

#[derive(Subcommand, Debug)]
enum GrantCommand {
    /// List a tenant's grants, optionally of one user.
    List {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum IssuanceCommand {
    /// List a tenant's issuance records (newest first), optionally of one server.
    List {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        server: Option<uuid::Uuid>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant and print its first API key (shown once).
    Create {
        /// Display name.
        name: String,
        /// Slug; derived from the name when omitted.
        #[arg(long)]
        slug: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ApiKeyCommand {
    /// Create an API key for a tenant and print it (shown once).
    Create {
        /// Tenant id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before any TLS client exists (the OTLP exporter's included).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _telemetry = match telemetry::init(cli.log_format) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot set up logging: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open(args: &StoreArgs, max_connections: u32) -> anyhow::Result<Store> {
    let envelope = load_master_key(args.master_key.as_deref(), &args.data_dir)?;
    bootstrap::open_store(&args.database_url, envelope, &StoreOptions { max_connections, ..StoreOptions::default() })
        .await
}

async fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        // The one command whose exit code reports an outcome rather than only success or error.
        Command::Client(args) => switchboard_api::cli_client::run(args).await,
        other => run_other(other).await.map(|()| std::process::ExitCode::SUCCESS),
    }
}

async fn run_other(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Worker(args) => {
            let store = open(&args.store, args.database_max_connections).await?;
            // Rediscovery may register OAuth clients: their redirect URI is under the public URL,
            // which a worker must not guess.
            let public_url = args.public_url.as_deref().filter(|u| !u.is_empty());
            if public_url.is_none() {
                tracing::info!("SWITCHBOARD_PUBLIC_URL is not set: this worker runs no rediscovery");
            }
            let config = switchboard_worker::runtime::RuntimeConfig {
                network: network(args.allow_private_networks, &args.outbound_allowlist)?,
                rediscovery: public_url.is_some(),
                redis_url: args.redis_url.clone(),
                redis_prefix: args.redis_prefix.clone(),
                worker: args.knobs.config(),
                ..switchboard_worker::runtime::RuntimeConfig::new(public_url.unwrap_or("http://localhost:8080"))
            };
            switchboard_worker::runtime::Runtime::new(store, config)?.worker().run(shutdown_signal()).await;
            Ok(())
        }
        Command::Migrate(args) => {
            let store = open(&args, 1).await?;
            bootstrap::migrate(&store).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Discover { url, json, allow_private_network, outbound_allowlist } => {
            discover(&url, json, allow_private_network, &outbound_allowlist).await
        }
        Command::Openapi { output } => {
            let text = switchboard_api::openapi::spec_json();
            match output {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        Command::Admin { command, store } => admin(command, &open(&store, 2).await?).await,
        Command::Client(_) => Ok(()), // routed by `run`, which keeps its exit code
    }
}

async fn discover(url: &str, json: bool, allow_private_networks: bool, allowlist: &str) -> anyhow::Result<()> {
    let policy = switchboard_domain::validate::Policy { allow_private_networks };
    let endpoint = switchboard_domain::mcp_server::validate_endpoint(policy, &serde_json::json!({"endpoint": url}))
        .map_err(explain)?;
    let network = network(allow_private_networks, allowlist)?;
    let fetcher = switchboard_discovery::Fetcher::new(network, switchboard_discovery::Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
    let result = switchboard_discovery::Discoverer::new(fetcher).discover(&endpoint).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", switchboard_api::report::discovery(&result));
    }
    Ok(())
}

/// A domain error for a terminal: every invalid field with its hint.
fn explain(e: switchboard_domain::DomainError) -> anyhow::Error {
    match e {
        switchboard_domain::DomainError::Invalid(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| match &f.hint {
                    Some(h) => format!("{}: {} (hint: {h})", f.field, f.message),
                    None => format!("{}: {}", f.field, f.message),
                })
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.into(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
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
    };
    let redis = settings
        .redis_url
        .as_deref()
        .map(|url| switchboard_api::redis::RedisHandle::new(url, &settings.redis_prefix))
        .transpose()?;
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let workers =
        args.http_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get));
    let config = switchboard_api::state::runtime_config(&settings, args.knobs.config())?;
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
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn admin(command: AdminCommand, store: &Store) -> anyhow::Result<()> {
    match command {
        AdminCommand::Tenant { command: TenantCommand::Create { name, slug, json } } => {
            let spec = switchboard_domain::tenant::validate_create(&serde_json::json!({"name": name, "slug": slug}))
                .map_err(explain)?;
            let (tenant, key) = store.admin().create_tenant(&Actor::Admin, spec).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": tenant.id, "name": tenant.name, "slug": tenant.slug, "created_at": tenant.created_at,
                        "api_key": key.plaintext.expose(), "api_key_id": key.key.id, "api_key_prefix": key.key.prefix})
                );
            } else {
                println!(
                    "tenant   {} ({})\nid       {}\napi key  {}\n\nThe API key is shown once; store it now.",
                    tenant.name,
                    tenant.slug,
                    tenant.id,
                    key.plaintext.expose()
                );
            }
        }
        AdminCommand::Tenant { command: TenantCommand::List { json } } => {
            let mut cursor: Option<String> = None;
            let mut all = Vec::new();
            loop {
                let page = store
                    .admin()
                    .list_tenants(switchboard_domain::page::PageRequest::parse(Some("100"), cursor.as_deref())?)
                    .await?;
                all.extend(page.data);
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(
                        |t| serde_json::json!({"id": t.id, "name": t.name, "slug": t.slug, "created_at": t.created_at}),
                    )
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for t in &all {
                    println!("{}  {:<24} {}", t.id, t.slug, t.name);
                }
            }
        }
        AdminCommand::Grant { command: GrantCommand::List { tenant, user, json } } => {
            let filter = switchboard_domain::store::ConnectionFilter { user_id: user, ..Default::default() };
            let page = store
                .tenant(tenant.into())
                .list_connections(switchboard_domain::page::PageRequest::parse(Some("100"), None)?, &filter)
                .await?;
            let rows: Vec<_> = page
                .data
                .iter()
                .map(|c| serde_json::json!({"id": c.id, "user_id": c.key.user_id, "agent_id": c.key.agent_id, "mcp_server_id": c.key.mcp_server_id,
                    "status": c.status.as_str(), "scopes": c.scopes, "connected_at": c.connected_at, "expires_at": c.expires_at}))
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for c in &page.data {
                    println!(
                        "{}  {:<14} user {}  agent {}  server {}",
                        c.id,
                        c.status.as_str(),
                        c.key.user_id,
                        c.key.agent_id,
                        c.key.mcp_server_id
                    );
                }
            }
        }
        AdminCommand::Issuance { command: IssuanceCommand::List { tenant, server, json } } => {
            let filter = switchboard_domain::store::ConnectionFilter {
                mcp_server_id: server.map(Into::into),
                ..Default::default()
            };
            let page = store
                .tenant(tenant.into())
                .list_issuances(switchboard_domain::page::PageRequest::parse(Some("100"), None)?, &filter)
                .await?;
            if json {
                let rows: Vec<_> = page
                    .data
                    .iter()
                    .map(|i| serde_json::json!({"id": i.id, "outcome": i.outcome, "user_id": i.key.user_id, "agent_id": i.key.agent_id,
                        "mcp_server_id": i.key.mcp_server_id, "scopes": i.scopes, "reason": i.reason, "created_at": i.created_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for i in &page.data {
                    println!(
                        "{}  {:<8} user {}  server {}  {}",
                        i.created_at.format("%Y-%m-%d %H:%M:%S"),
                        i.outcome,
                        i.key.user_id,
                        i.key.mcp_server_id,
                        i.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        AdminCommand::ApiKey { command: ApiKeyCommand::Create { tenant, name, json } } => {
            let key = store.admin().create_api_key(&Actor::Admin, tenant.into(), name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": key.key.id, "tenant_id": key.key.tenant_id, "name": key.key.name, "prefix": key.key.prefix,
                        "api_key": key.plaintext.expose(), "created_at": key.key.created_at})
                );
            } else {
                println!(
                    "api key  {}\nid       {}\n\nThe API key is shown once; store it now.",
                    key.plaintext.expose(),
                    key.key.id
                );
            }
        }
    }
    Ok(())
}
