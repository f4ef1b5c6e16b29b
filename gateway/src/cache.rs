//! The gateway's in-process views: what the hot path reads instead of the database. Each entry
//! lives a short while (the backstop) and is dropped at once by the change that makes it wrong,
//! announced in this process directly and to the others through Redis (see `changes.rs`).
//!
//! A read of the database races the changes: a change applied while the read was under way
//! must not be undone by storing what the read found. So a view counts the changes applied to
//! it (its epoch), a filler notes the epoch before reading ([`Ttl::epoch`]) and stores with
//! [`Ttl::fill`], which keeps nothing when a change came in between.

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
    /// Changes applied so far (removals); bumped under the write lock.
    epoch: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> Ttl<K, V> {
    pub(crate) fn new(life: Duration, max: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), life, max, epoch: AtomicU64::new(0) }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().ok()?;
        entries.get(key).filter(|(_, until)| Instant::now() < *until).map(|(v, _)| v.clone())
    }

    /// Keeps `value`, which no database read produced (nothing to race).
    pub(crate) fn put(&self, key: K, value: V) {
        self.fill(self.epoch(), key, value);
    }

    /// The view's epoch, to be noted before reading what will be stored with [`Self::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps `value` (read after [`Self::epoch`] returned `since`) unless a change was applied
    /// since.
    pub(crate) fn fill(&self, since: u64, key: K, value: V) {
        self.fill_for(since, key, value, self.life);
    }

    /// [`Self::fill`] for `life` at most (and never longer than the map's own life).
    pub(crate) fn fill_for(&self, since: u64, key: K, value: V, life: Duration) {
        let Some(until) = Instant::now().checked_add(life.min(self.life)) else { return };
        if let Ok(mut entries) = self.entries.write() {
            if self.epoch.load(Ordering::Acquire) != since {
                return;
            }
            if entries.len() >= self.max {
                let now = Instant::now();
                entries.retain(|_, (_, u)| now < *u);
                if entries.len() >= self.max {
                    entries.clear();
                }
            }
            entries.insert(key, (value, until));
        }
    }

    pub(crate) fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.remove(key);
        }
    }

    pub(crate) fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
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
        let since = view.epoch();
        view.fill(since, "a", 1);
        assert_eq!(view.get(&"a"), Some(1));
        // A reader notes the epoch, a change lands, the reader stores what it read before it.
        let since = view.epoch();
        view.remove(&"a");
        view.fill(since, "a", 1);
        assert_eq!(view.get(&"a"), None, "the stale read must not undo the change");
        let since = view.epoch();
        view.fill(since, "a", 2);
        assert_eq!(view.get(&"a"), Some(2));
        view.retain(|_, _| false);
        assert_eq!(view.get(&"a"), None);
        // Entries expire on their own.
        let since = view.epoch();
        view.fill_for(since, "b", 3, Duration::ZERO);
        assert_eq!(view.get(&"b"), None);
    }
}
