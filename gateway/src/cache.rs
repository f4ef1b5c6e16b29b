//! The gateway's in-process views: what the hot path reads instead of the database. Each entry
//! lives a short while (the backstop) and is dropped at once by the change that makes it wrong,
//! announced in this process directly and to the others through Redis (see `changes.rs`).
//!
//! A read of the database races the changes: a change applied while the read was under way
//! must not be undone by storing what the read found. So a view counts the changes applied to
//! it (its epochs: one per shard of keys, so a change to one grant does not discard the fills
//! of all the others), a filler notes the key's epoch before reading ([`Ttl::epoch`]) and stores
//! with [`Ttl::fill`], which keeps nothing when a change to that shard came in between. A change
//! that spans keys (a tenant's) moves every shard.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A bounded map whose entries expire. Reads take a shared lock; when full, expired entries
/// are swept, and if all are live the map starts over rather than grow.
pub(crate) struct Ttl<K, V> {
    entries: RwLock<HashMap<K, (V, Instant)>>,
    life: Duration,
    max: usize,
    /// Changes applied so far (removals), per shard of keys; bumped under the write lock.
    epochs: [AtomicU64; SHARDS],
}

const SHARDS: usize = 64;

fn shard<K: Hash>(key: &K) -> usize {
    use std::hash::{BuildHasher as _, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key);
    usize::try_from(h % SHARDS as u64).unwrap_or(0)
}

impl<K: Hash + Eq + Clone, V: Clone> Ttl<K, V> {
    pub(crate) fn new(life: Duration, max: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), life, max, epochs: std::array::from_fn(|_| AtomicU64::new(0)) }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().ok()?;
        entries.get(key).filter(|(_, until)| Instant::now() < *until).map(|(v, _)| v.clone())
    }

    /// Keeps `value`, which no database read produced (nothing to race).
    pub(crate) fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.write() {
            self.insert(&mut entries, key, value, self.life);
        }
    }

    /// The epoch of `key`'s shard, to be noted before reading what will be stored with
    /// [`Self::fill`].
    pub(crate) fn epoch(&self, key: &K) -> u64 {
        self.epochs.get(shard(key)).map_or(0, |e| e.load(Ordering::Acquire))
    }

    /// Keeps `value` (read after [`Self::epoch`] returned `since`) unless a change to its shard
    /// was applied since.
    pub(crate) fn fill(&self, since: u64, key: K, value: V) {
        self.fill_for(since, key, value, self.life);
    }

    /// [`Self::fill`] for `life` at most (and never longer than the map's own life).
    pub(crate) fn fill_for(&self, since: u64, key: K, value: V, life: Duration) {
        if let Ok(mut entries) = self.entries.write()
            && self.epoch(&key) == since
        {
            self.insert(&mut entries, key, value, life);
        }
    }

    fn insert(&self, entries: &mut HashMap<K, (V, Instant)>, key: K, value: V, life: Duration) {
        let Some(until) = Instant::now().checked_add(life.min(self.life)) else { return };
        if entries.len() >= self.max {
            let now = Instant::now();
            entries.retain(|_, (_, u)| now < *u);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, (value, until));
    }

    pub(crate) fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.write() {
            if let Some(e) = self.epochs.get(shard(key)) {
                e.fetch_add(1, Ordering::AcqRel);
            }
            entries.remove(key);
        }
    }

    pub(crate) fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            for e in &self.epochs {
                e.fetch_add(1, Ordering::AcqRel);
            }
            entries.retain(|k, (v, _)| keep(k, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let view: Ttl<&str, u32> = Ttl::new(Duration::from_secs(60), 10);
        let _ = view.epoch(&"warm");
        let since = view.epoch(&"a");
        view.fill(since, "a", 1);
        assert_eq!(view.get(&"a"), Some(1));
        // A reader notes the epoch, a change lands, the reader stores what it read before it.
        let since = view.epoch(&"a");
        view.remove(&"a");
        view.fill(since, "a", 1);
        assert_eq!(view.get(&"a"), None, "the stale read must not undo the change");
        let since = view.epoch(&"a");
        view.fill(since, "a", 2);
        assert_eq!(view.get(&"a"), Some(2));
        // A change spanning keys (a tenant's) discards every fill under way.
        let since = view.epoch(&"c");
        view.retain(|_, _| false);
        assert_eq!(view.get(&"a"), None);
        view.fill(since, "c", 4);
        assert_eq!(view.get(&"c"), None);
        // A change of another shard's key leaves a fill be; `put` always keeps.
        let other = (0..1000).map(|i| format!("k{i}")).find(|k| shard(&k.as_str()) != shard(&"d")).unwrap_or_default();
        let since = view.epoch(&"d");
        view.remove(&other.as_str());
        view.fill(since, "d", 5);
        assert_eq!(view.get(&"d"), Some(5));
        view.put("e", 6);
        assert_eq!(view.get(&"e"), Some(6));
        // Entries expire on their own.
        let since = view.epoch(&"b");
        view.fill_for(since, "b", 3, Duration::ZERO);
        assert_eq!(view.get(&"b"), None);
    }
}
