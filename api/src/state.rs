//! What every handler shares: the store, the settings, metrics, Redis, the key cache and the
//! server set-up (discovery and registration).

use std::sync::Arc;

use switchboard_discovery::{Discoverer, Fetcher, Limits, NetworkPolicy};
use switchboard_domain::store::Store;
use switchboard_worker::consent::Consent;
use switchboard_worker::servers::ServerSetup;

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
    pub servers: Arc<ServerSetup>,
    pub consent: Arc<Consent>,
    /// Refreshes on demand (the access-token call); the worker refreshes ahead of time.
    pub refresher: switchboard_worker::refresh::Refresher,
    /// Tells workers that jobs were queued (a disconnect's revocation, a deletion's).
    pub wakeups: switchboard_worker::wake::Wakeups,
}

/// The outbound policy of a deployment: the private-network switch and the operator allow-list.
pub fn network_policy(settings: &Settings) -> anyhow::Result<NetworkPolicy> {
    NetworkPolicy { allow_private_networks: settings.allow_private_networks, allow: vec![] }
        .with_allowlist(&settings.outbound_allowlist)
        .map_err(|e| anyhow::anyhow!("SWITCHBOARD_OUTBOUND_ALLOWLIST: {e}"))
}

impl AppState {
    /// This state with a database pool of its own, for one HTTP worker thread.
    pub async fn for_worker(&self) -> Result<Self, switchboard_domain::DomainError> {
        Ok(Self { store: self.store.another_pool().await?, ..self.clone() })
    }

    pub fn new(store: Store, settings: Settings, redis: Option<RedisHandle>) -> anyhow::Result<Self> {
        let fetcher = Fetcher::new(network_policy(&settings)?, Limits::default())
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        let refresher = switchboard_worker::refresh::Refresher::new(
            store.clone(),
            fetcher.clone(),
            format!("api:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        );
        let discoverer = Arc::new(Discoverer::new(fetcher));
        let servers = Arc::new(ServerSetup::new(store.clone(), discoverer.clone(), &settings.public_url));
        let consent = Arc::new(Consent::new(store.clone(), discoverer, servers.redirect_uri()));
        let wakeups =
            switchboard_worker::wake::Wakeups::configured(settings.redis_url.as_deref(), &settings.redis_prefix)
                .map_err(|e| anyhow::anyhow!("SWITCHBOARD_REDIS_URL: {e}"))?;
        Ok(Self {
            store,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::new()),
            redis,
            keys: Arc::new(KeyCache::default()),
            servers,
            consent,
            refresher,
            wakeups,
        })
    }
}
