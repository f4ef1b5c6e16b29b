//! Client-credentials tokens by server configuration, reused until shortly before they expire
//! (a check per request would otherwise ask the provider for a token each time).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_domain::McpServerId;
use switchboard_domain::crypto::Secret;

/// A token is reused only for the exact configuration it was obtained with: the server and a
/// hash of everything the token depends on (token URL, client, scopes, resource, secret).
pub(super) type CcKey = (McpServerId, [u8; 32]);

/// Renew a cached token this long before it expires (or at half its life, when that is
/// sooner); tokens without an expiry are kept this long.
const MARGIN: Duration = Duration::from_secs(60);
const DEFAULT_LIFE: Duration = Duration::from_secs(300);
/// Past this many entries the cache starts over rather than grow.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(super) struct CcCache(Mutex<HashMap<CcKey, (Secret, Instant)>>);

impl CcCache {
    /// The token kept for `key`, while it is fresh.
    pub(super) fn get(&self, key: &CcKey) -> Option<String> {
        let entries = self.0.lock().ok()?;
        entries.get(key).filter(|(_, until)| Instant::now() < *until).map(|(t, _)| t.expose().to_owned())
    }

    /// Keeps `token`, which lives `expires_in` seconds (as bounded where the answer was parsed).
    pub(super) fn keep(&self, key: CcKey, token: &str, expires_in: Option<u64>) {
        let life = expires_in.map_or(DEFAULT_LIFE, Duration::from_secs);
        let keep = life.saturating_sub(MARGIN).min(life / 2);
        // A lifetime no clock can add is not kept at all, rather than panic under the lock.
        let Some(until) = Instant::now().checked_add(keep) else { return };
        if let Ok(mut entries) = self.0.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Secret::new(token.to_owned()), until));
        }
    }

    /// Drops the token kept for `key` (the server refused it).
    pub(super) fn forget(&self, key: &CcKey) {
        if let Ok(mut entries) = self.0.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_for_part_of_their_life_and_any_lifetime_is_safe() {
        let cache = CcCache::default();
        let key = (McpServerId::new(), [1; 32]);
        cache.keep(key, "t", Some(3600));
        assert_eq!(cache.get(&key).as_deref(), Some("t"));
        // Half of two seconds is already within the margin: kept for a second at most.
        cache.keep(key, "short", Some(0));
        assert_eq!(cache.get(&key), None);
        // The lifetime once reached `Instant + Duration` unchecked and panicked under the lock.
        cache.keep(key, "forever", Some(u64::MAX));
        cache.keep(key, "again", Some(3600));
        assert_eq!(cache.get(&key).as_deref(), Some("again"), "the cache still works");
        cache.forget(&key);
        assert_eq!(cache.get(&key), None);
    }
}
