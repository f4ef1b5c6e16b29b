//! What every handler shares: the store, the settings, metrics, Redis and the key cache.

use std::sync::Arc;

use switchboard_domain::store::Store;

use crate::auth::KeyCache;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::redis::RedisHandle;

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub redis: Option<RedisHandle>,
    pub keys: Arc<KeyCache>,
}

impl AppState {
    #[must_use]
    pub fn new(store: Store, settings: Settings, redis: Option<RedisHandle>) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::new()),
            redis,
            keys: Arc::new(KeyCache::default()),
        }
    }
}
