//! The credentials a process has verified, kept for a few seconds so that a busy tenant does not
//! cost a database read per request: API keys by digest (giving a [`TenantContext`]). The
//! extractors in `auth.rs` read and fill it; routes that delete a key or a tenant evict from it.
//! Session tickets are verified from the gateway's views (`switchboard_gateway::Gateway::verify_ticket`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_domain::store::{Store, TenantStore};
use switchboard_domain::tenant::Actor;
use switchboard_domain::{ApiKeyId, TenantId};

/// How long a verified key is trusted without asking the database again. A key deleted through
/// this process stops working at once; through another process, within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
const KEY_CACHE_MAX: usize = 10_000;

/// A caller authenticated with a tenant API key.
#[derive(Clone, Copy, Debug)]
pub struct TenantContext {
    pub tenant_id: TenantId,
    pub api_key_id: ApiKeyId,
}

impl TenantContext {
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.api_key_id)
    }

    /// The caller's tenant's view of `store`: the only way a tenant-plane handler reaches data,
    /// so the tenant always comes from the credential.
    #[must_use]
    pub fn store<'a>(&self, store: &'a Store) -> TenantStore<'a> {
        store.tenant(self.tenant_id)
    }
}

/// Entries trusted for [`KEY_CACHE_TTL`], at most [`KEY_CACHE_MAX`] of them (expired ones are
/// swept when full; if all are live, everything is dropped rather than growing).
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(v, _)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= KEY_CACHE_MAX {
                entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
                if entries.len() >= KEY_CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(key, (value, Instant::now()));
        }
    }

    pub(crate) fn retain(&self, keep: impl Fn(&V) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (v, _)| keep(v));
        }
    }
}

/// Verified API keys, by digest. Only successes are cached, so garbage cannot fill it.
#[derive(Debug, Default)]
pub struct KeyCache {
    pub(crate) api_keys: TtlCache<[u8; 32], TenantContext>,
}

impl KeyCache {
    /// Forgets a deleted key.
    pub fn evict(&self, key_id: ApiKeyId) {
        self.api_keys.retain(|ctx| ctx.api_key_id != key_id);
    }

    /// Forgets every credential of a deleted tenant.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.api_keys.retain(|ctx| ctx.tenant_id != tenant);
    }
}
