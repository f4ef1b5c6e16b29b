//! `switchboard worker`: the background worker on its own (the production shape: API and
//! workers apart).

use clap::Args;

use super::common::{StoreArgs, WorkerKnobs, network, open, shutdown_signal};

#[derive(Args, Debug)]
pub(super) struct WorkerArgs {
    #[command(flatten)]
    pub(super) store: StoreArgs,
    #[command(flatten)]
    pub(super) knobs: WorkerKnobs,
    /// Let outbound calls reach loopback and private addresses (development and tests only).
    #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub(super) allow_private_networks: bool,
    /// Comma-separated CIDRs and host names that outbound calls may reach even when private.
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
    pub(super) outbound_allowlist: String,
    /// Database pool size.
    #[arg(long, env = "SWITCHBOARD_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub(super) database_max_connections: u32,
    /// Base URL of the deployment (as `serve` has it): rediscovery registers clients with
    /// redirect URIs under it, so without it this worker runs no rediscovery.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub(super) public_url: Option<String>,
    /// Redis URL: the API wakes workers through it when it queues work (they poll every second
    /// without it).
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub(super) redis_url: Option<String>,
    /// Prefix of every Redis key and channel (as `serve` has it).
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX", default_value = "switchboard")]
    pub(super) redis_prefix: String,
}

/// Runs the worker until the shutdown signal.
pub(super) async fn run(args: WorkerArgs) -> anyhow::Result<()> {
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
