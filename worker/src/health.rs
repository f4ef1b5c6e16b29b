//! The health counters of this process: calls through the gateway and runtime checks, counted per
//! (server, minute, source, outcome) in memory and written to the store every few seconds — a
//! handful of rows per server and minute however many calls there were. Each process writes
//! under its own instance id, so processes never overwrite one another; a report adds them up.
//!
//! Recording is a short lock and a hash update; nothing on the call's path waits for the
//! database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard_domain::clock::now;
use switchboard_domain::health::{self, BucketKey, HealthReport, MinuteCounts, Source};
use switchboard_domain::store::Store;
use switchboard_domain::{DomainError, McpServerId, TenantId};

/// How often counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How long counts are kept: a day, and a little for the window's edge.
const KEEP: chrono::Duration = chrono::Duration::hours(26);

/// A minute's key as counted in memory: the outcome is a static code, so counting a call
/// allocates nothing once its minute exists.
type Key = (TenantId, McpServerId, DateTime<Utc>, Source, &'static str);

#[derive(Default)]
struct Pending {
    /// Counts of the minutes still being written, cumulative per minute; `true` when changed
    /// since the last write.
    minutes: HashMap<Key, (MinuteCounts, bool)>,
    last_prune: Option<DateTime<Utc>>,
}

fn bucket_key(k: &Key) -> BucketKey {
    BucketKey { tenant_id: k.0, mcp_server_id: k.1, minute: k.2, source: k.3, outcome: k.4.to_owned() }
}

/// This process's counters.
pub struct Health {
    store: Store,
    instance: uuid::Uuid,
    pending: Mutex<Pending>,
    /// One flush at a time: two writing the same minute's whole counts could land out of order,
    /// an older count over a newer one.
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("instance", &self.instance).finish_non_exhaustive()
    }
}

impl Health {
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self { store, instance: uuid::Uuid::now_v7(), pending: Mutex::default(), flushing: tokio::sync::Mutex::new(()) }
    }

    /// Counts one call of `server`: `outcome` is `ok` or a finding code, `detail` what a failure
    /// said (never a secret).
    pub fn record(
        &self,
        tenant: TenantId,
        server: McpServerId,
        source: Source,
        outcome: &'static str,
        latency: Duration,
        detail: Option<&str>,
    ) {
        let at = now();
        let key = (tenant, server, health::minute_of(at), source, outcome);
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let detail = if outcome == health::OK { None } else { detail };
        if let Ok(mut p) = self.pending.lock() {
            let entry = p.minutes.entry(key).or_default();
            entry.0.add(ms, at, detail);
            entry.1 = true;
        }
    }

    /// Writes what changed since the last write, forgets minutes that are over and written, and
    /// once an hour prunes counts older than a day.
    pub async fn flush(&self) -> Result<(), DomainError> {
        let _one_at_a_time = self.flushing.lock().await;
        let current = health::minute_of(now());
        // A minute is forgotten one flush after it ended and was written: a call that read the
        // clock just before the minute turned still lands in its counts, not in a fresh entry
        // that would overwrite them.
        let forget_before = current - chrono::Duration::minutes(1);
        // Counts that cannot be written (the database is away) are kept no longer than a report
        // would show them.
        let give_up_before = current - KEEP;
        let (written, rows, prune) = {
            let Ok(mut p) = self.pending.lock() else { return Ok(()) };
            let mut written = Vec::new();
            let mut rows = Vec::new();
            for (k, (c, dirty)) in p.minutes.iter_mut().filter(|(_, (_, dirty))| *dirty) {
                *dirty = false;
                written.push(*k);
                rows.push((bucket_key(k), c.clone()));
            }
            let prune = p.last_prune.is_none_or(|t| now() - t > chrono::Duration::hours(1));
            if prune {
                p.last_prune = Some(now());
            }
            (written, rows, prune)
        };
        let outcome = self.store.write_health(self.instance, &rows).await;
        if let Ok(mut p) = self.pending.lock() {
            if outcome.is_err() {
                // Written again next time: the counts are kept, marked changed.
                for k in &written {
                    if let Some(entry) = p.minutes.get_mut(k) {
                        entry.1 = true;
                    }
                }
            }
            // Minutes that are over and written are forgotten.
            p.minutes.retain(|k, (_, dirty)| k.2 >= give_up_before && (*dirty || k.2 >= forget_before));
        }
        outcome?;
        if prune {
            self.store.prune_health(now() - KEEP).await?;
        }
        Ok(())
    }

    /// `server`'s health over the last hour and day, every instance's counts included (this
    /// one's written first, so a report right after a call counts it).
    pub async fn report(&self, tenant: TenantId, server: McpServerId) -> Result<HealthReport, DomainError> {
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "writing health counters failed; the report reads what is stored");
        }
        let at = now();
        let buckets = self.store.tenant(tenant).health_buckets(server, at - chrono::Duration::days(1)).await?;
        Ok(health::report(server, &buckets, at))
    }

    /// Writes every [`FLUSH_EVERY`] until `shutdown`, then once more.
    pub async fn run(self: std::sync::Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %switchboard_domain::error::chain(&e), "writing health counters failed; retried at the next flush");
                    }
                }
            }
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %switchboard_domain::error::chain(&e), "the last write of health counters failed");
        }
    }
}
