//! The gateway's in-process views: what the hot path reads instead of the database. Each entry
//! lives a short while (the backstop) and is dropped at once by the change that makes it wrong,
//! announced in this process directly and to the others through Redis (see `changes.rs`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// A bounded map whose entries expire. Reads take a shared lock; when full, expired entries
/// are swept, and if all are live the map starts over rather than grow.
pub(crate) struct Ttl<K, V> {
    entries: RwLock<HashMap<K, (V, Instant)>>,
    life: Duration,
    max: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Ttl<K, V> {
    pub(crate) fn new(life: Duration, max: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), life, max }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().ok()?;
        entries.get(key).filter(|(_, until)| Instant::now() < *until).map(|(v, _)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        self.put_for(key, value, self.life);
    }

    /// Keeps `value` for `life` at most (and never longer than the map's own life).
    pub(crate) fn put_for(&self, key: K, value: V, life: Duration) {
        let Some(until) = Instant::now().checked_add(life.min(self.life)) else { return };
        if let Ok(mut entries) = self.entries.write() {
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
            entries.remove(key);
        }
    }

    pub(crate) fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|k, (v, _)| keep(k, v));
        }
    }
}
