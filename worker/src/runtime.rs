//! The composition root of the connection lifecycle: one [`RuntimeConfig`] builds the outbound
//! client, discovery and registration, consent, the refresher and the wake-ups once, and the
//! background [`Worker`] from the same parts. `switchboard serve`, `switchboard worker` and the
//! test app all build their runtime here, so what runs in tests is what runs in production.

use std::sync::Arc;
use std::time::Duration;

use switchboard_discovery::{Discoverer, Fetcher, Limits, NetworkPolicy};
use switchboard_domain::store::Store;
use switchboard_domain::validate::Policy;

use crate::Worker;
use crate::changes::Changes;
use crate::consent::Consent;
use crate::jobs::JobRunner;
use crate::lifecycle::Lifecycle;
use crate::refresh::Refresher;
use crate::servers::ServerSetup;
use crate::wake::Wakeups;

/// Everything a runtime is built from. The binary fills it from flags and environment; nothing
/// under it reads the environment.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where outbound calls may go.
    pub network: NetworkPolicy,
    /// Size and time caps of outbound calls.
    pub limits: Limits,
    /// The base of redirect URIs and client metadata URLs.
    pub public_url: String,
    /// Whether the worker rediscovers servers: it may register OAuth clients, whose redirect URI
    /// is under the public URL — which a `switchboard worker` started without one must not guess.
    pub rediscovery: bool,
    /// Redis for wake-ups between processes; `None` wakes only this process.
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub worker: WorkerConfig,
}

/// The background worker's knobs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Marks the leases this process holds (a host name, a process id).
    pub name: String,
    /// How long a claim on a refresh or a job lasts; longer than a token call may take.
    pub lease: Duration,
    /// How often the worker looks for due work when nothing wakes it.
    pub poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            name: format!("worker:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        }
    }
}

impl RuntimeConfig {
    /// A configuration with the defaults: no private networks, no Redis, no rediscovery.
    #[must_use]
    pub fn new(public_url: &str) -> Self {
        Self {
            network: NetworkPolicy { allow_private_networks: false, allow: vec![] },
            limits: Limits::default(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            rediscovery: true,
            redis_url: None,
            redis_prefix: "switchboard".into(),
            worker: WorkerConfig::default(),
        }
    }

    /// The URL policy of what tenants configure, which follows the outbound one.
    #[must_use]
    pub fn policy(&self) -> Policy {
        Policy { allow_private_networks: self.network.allow_private_networks }
    }
}

/// The lifecycle's parts, built once. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub store: Store,
    pub fetcher: Fetcher,
    pub servers: Arc<ServerSetup>,
    pub consent: Arc<Consent>,
    /// What requests ask of a grant (connect, consent, check, disconnect, access token).
    pub lifecycle: Lifecycle,
    /// The one refresher of this process: the access-token call's on-demand refreshes and the
    /// worker's ahead-of-time ones share its single-flight map.
    pub refresher: Refresher,
    /// Tells workers that jobs were queued (a disconnect's revocation, a deletion's).
    pub wakeups: Wakeups,
    /// Tells caches (the gateway's views) that what they hold changed.
    pub changes: Changes,
    /// This process's health counters (gateway calls and checks, per server and minute).
    pub health: Arc<crate::health::Health>,
    config: RuntimeConfig,
}

/// A runtime that could not be built, and why.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("SWITCHBOARD_REDIS_URL: {0}")]
    Redis(String),
}

impl Runtime {
    pub fn new(store: Store, config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let fetcher =
            Fetcher::new(config.network.clone(), config.limits).map_err(|e| RuntimeError::Http(e.to_string()))?;
        let deadline = fetcher.limits().total_timeout;
        if config.worker.lease <= deadline + Duration::from_secs(2) {
            tracing::warn!(
                lease_secs = config.worker.lease.as_secs(),
                deadline_secs = deadline.as_secs(),
                "SWITCHBOARD_WORKER_LEASE_SECS is not longer than a token call may take; a slow provider can outlive a lease"
            );
        }
        let discoverer = Arc::new(Discoverer::new(fetcher.clone()));
        let changes =
            Changes::configured(config.redis_url.as_deref(), &config.redis_prefix).map_err(RuntimeError::Redis)?;
        let servers = Arc::new(
            ServerSetup::new(store.clone(), discoverer.clone(), &config.public_url).with_changes(changes.clone()),
        );
        let consent = Arc::new(Consent::new(store.clone(), discoverer, servers.redirect_uri()));
        let refresher = Refresher::new(store.clone(), fetcher.clone(), config.worker.name.clone())
            .with_lease(config.worker.lease)
            .with_changes(changes.clone());
        let wakeups =
            Wakeups::configured(config.redis_url.as_deref(), &config.redis_prefix).map_err(RuntimeError::Redis)?;
        let lifecycle =
            Lifecycle::new(store.clone(), consent.clone(), refresher.clone(), wakeups.clone(), changes.clone());
        let health = Arc::new(crate::health::Health::new(store.clone()));
        Ok(Self { store, fetcher, servers, consent, lifecycle, refresher, wakeups, changes, health, config })
    }

    /// The configuration it was built from.
    #[must_use]
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The background worker, on the same parts (and the same wake-ups, so a job queued through
    /// this runtime wakes it at once).
    #[must_use]
    pub fn worker(&self) -> Worker {
        let c = &self.config.worker;
        let mut jobs = JobRunner::new(self.store.clone(), self.fetcher.clone(), c.name.clone()).with_lease(c.lease);
        if self.config.rediscovery {
            jobs = jobs.with_servers(self.servers.clone(), self.config.policy());
        }
        Worker::from_parts(self.store.clone(), self.refresher.clone(), jobs, self.wakeups.clone(), c.poll)
    }
}
