//! What every handler shares: the store, the settings, metrics, Redis, the key cache and the
//! lifecycle's [`Runtime`].

use std::sync::Arc;

use switchboard_discovery::NetworkPolicy;
use switchboard_domain::store::Store;
use switchboard_worker::runtime::{Runtime, RuntimeConfig, WorkerConfig};

use crate::config::Settings;
use crate::credentials::KeyCache;
use crate::metrics::Metrics;
use crate::redis::RedisHandle;

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub redis: Option<RedisHandle>,
    pub keys: Arc<KeyCache>,
    /// The connection lifecycle's parts (discovery and registration, consent, the refresher,
    /// the wake-ups), built from the settings by the one composition root.
    pub runtime: Runtime,
    /// The MCP gateway (`/mcp/...`), on the same runtime.
    pub gateway: switchboard_gateway::Gateway,
}

/// The outbound policy of a deployment: the private-network switch and the operator allow-list.
pub fn network_policy(settings: &Settings) -> anyhow::Result<NetworkPolicy> {
    NetworkPolicy { allow_private_networks: settings.allow_private_networks, allow: vec![] }
        .with_allowlist(&settings.outbound_allowlist)
        .map_err(|e| anyhow::anyhow!("SWITCHBOARD_OUTBOUND_ALLOWLIST: {e}"))
}

/// The runtime configuration `settings` describe, with `worker` as the background worker's knobs.
pub fn runtime_config(settings: &Settings, worker: WorkerConfig) -> anyhow::Result<RuntimeConfig> {
    Ok(RuntimeConfig {
        network: network_policy(settings)?,
        redis_url: settings.redis_url.clone(),
        redis_prefix: settings.redis_prefix.clone(),
        worker,
        ..RuntimeConfig::new(&settings.public_url)
    })
}

/// The gateway's configuration `settings` describe. The upstream's deadline stays inside the
/// request deadline, so that a slow upstream is a JSON-RPC error, not a cut connection.
pub fn gateway_config(settings: &Settings) -> switchboard_gateway::GatewayConfig {
    let mut config = switchboard_gateway::GatewayConfig::new(&settings.public_url);
    config.upstream_timeout = settings
        .gateway_upstream_timeout
        .min(settings.request_timeout.saturating_sub(std::time::Duration::from_secs(1)))
        .max(std::time::Duration::from_millis(100));
    config.call_timeout = settings.gateway_call_timeout.max(config.upstream_timeout);
    config.allowed_origins = settings.gateway_allowed_origins.clone();
    config
}

impl AppState {
    /// Announces a change of what the gateway caches: applied to this process's views before
    /// the caller answers (the gateway observes every change published here), and published to
    /// the other processes.
    pub fn changed(&self, change: switchboard_worker::changes::Change) {
        self.runtime.changes.publish(change);
    }

    /// This state with a database pool of its own, for one HTTP worker thread.
    pub async fn for_worker(&self) -> Result<Self, switchboard_domain::DomainError> {
        Ok(Self { store: self.store.another_pool().await?, ..self.clone() })
    }

    /// The state of `settings`, with the worker's defaults.
    pub fn new(store: Store, settings: Settings, redis: Option<RedisHandle>) -> anyhow::Result<Self> {
        let config = runtime_config(&settings, WorkerConfig::default())?;
        Self::with_runtime(Runtime::new(store, config)?, settings, redis)
    }

    /// The state around a runtime already built (by `serve`, from its flags).
    pub fn with_runtime(runtime: Runtime, settings: Settings, redis: Option<RedisHandle>) -> anyhow::Result<Self> {
        let gateway = switchboard_gateway::Gateway::new(runtime.clone(), gateway_config(&settings));
        Ok(Self {
            gateway: gateway.clone(),
            store: runtime.store.clone(),
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::with(|r| gateway.register_metrics(r))),
            redis,
            keys: Arc::new(KeyCache::default()),
            runtime,
        })
    }
}
