//! The connection lifecycle and its background work.
//!
//! [`consent`] holds the transitions a request drives (connect, consent completion, check,
//! disconnect); [`refresh`] the one the worker drives on its own: proactive refresh under a
//! database lease; [`jobs`] the durable jobs (revocation at the provider, event delivery,
//! rediscovery, tenant purge); [`servers`] discovery, hydration and client registration.
//! [`Worker::run`] ticks both, and once a minute does its housekeeping (expired consent flows,
//! old finished jobs, the daily rediscoveries); `switchboard worker` runs it alone and
//! `switchboard serve` runs it in-process by default. [`runtime`] builds all of it from one
//! configuration.

pub mod changes;
pub mod client_auth;
pub mod consent;
pub mod diagnose;
pub mod health;
pub mod jobs;
pub mod lifecycle;
pub mod refresh;
pub mod runtime;
pub mod servers;
pub mod wake;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use switchboard_domain::store::Store;

/// The background worker.
#[derive(Clone, Debug)]
pub struct Worker {
    store: Store,
    refresher: refresh::Refresher,
    jobs: jobs::JobRunner,
    /// What wakes it before its next poll.
    wakeups: wake::Wakeups,
    /// How often it looks for due work.
    pub interval: Duration,
}

impl Worker {
    /// A worker from its parts; [`runtime::Runtime::worker`] is how one is built.
    pub(crate) fn from_parts(
        store: Store,
        refresher: refresh::Refresher,
        jobs: jobs::JobRunner,
        wakeups: wake::Wakeups,
        interval: Duration,
    ) -> Self {
        Self { store, refresher, jobs, wakeups, interval }
    }

    #[must_use]
    pub fn refresher(&self) -> &refresh::Refresher {
        &self.refresher
    }

    #[must_use]
    pub fn jobs(&self) -> &jobs::JobRunner {
        &self.jobs
    }

    /// What runs once a minute: consent flows past their ten minutes are swept, finished jobs
    /// older than a week purged, and servers due for their daily rediscovery queued.
    pub async fn housekeeping(&self) {
        // The database's clock, which leases and due dates are measured on.
        let now = self.store.database_now().await.map_or_else(|_| switchboard_domain::clock::now(), |c| c.now());
        match self.store.queue().sweep_expired_flows(now).await {
            Ok((0, 0)) => {}
            Ok((flows, grants)) => {
                tracing::info!(flows, grants, "expired consent flows swept");
                if grants > 0 {
                    self.refresher.changes().publish(crate::changes::Change::Statuses);
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweeping expired consent flows failed"),
        }
        if let Err(e) = self.store.queue().purge_done_jobs(now, now - chrono::TimeDelta::days(7)).await {
            tracing::warn!(error = %e, "purging finished jobs failed");
        }
        if self.jobs.rediscovers() {
            match self.store.queue().enqueue_due_rediscoveries(now, 100).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(servers = n, "rediscoveries queued"),
                Err(e) => tracing::warn!(error = %e, "queueing rediscoveries failed"),
            }
        }
    }

    /// Runs until `shutdown` resolves: every `interval`, runs due jobs and refreshes due grants,
    /// repeating at once while passes come back full.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(backend = ?self.store.backend(), poll_ms = self.interval.as_millis(), "worker started");
        let listener = self.wakeups.listen();
        let work = async {
            let mut last_sweep: Option<std::time::Instant> = None;
            loop {
                if last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_sweep = Some(std::time::Instant::now());
                    self.housekeeping().await;
                }
                // Claim only what runs at once (8 jobs, 16 refreshes), so that every claim is
                // worked on well within its lease; full passes repeat at once.
                let jobs_full = match self.jobs.tick(8).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(jobs = n, "job pass");
                        n >= 8
                    }
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "a job pass failed; retrying");
                        false
                    }
                };
                match self.refresher.tick(16).await {
                    Ok(report) => {
                        let done: usize = report.values().sum();
                        if done > 0 {
                            tracing::debug!(?report, "refresh pass");
                        }
                        if done >= 16 || jobs_full {
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a refresh pass failed; retrying"),
                }
                if jobs_full {
                    continue;
                }
                self.wakeups.wait(self.interval).await;
            }
        };
        tokio::select! {
            () = work => {}
            () = shutdown => {}
        }
        if let Some(l) = listener {
            l.abort();
        }
        tracing::info!("worker stopped");
    }
}

/// Crash points for fault tests: a name listed in `SWITCHBOARD_FAILPOINTS` (comma-separated)
/// aborts the process right there, as a power cut would. Unset in production.
pub(crate) fn failpoint(name: &str) {
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    let points = POINTS.get_or_init(|| {
        std::env::var("SWITCHBOARD_FAILPOINTS")
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default()
    });
    if points.iter().any(|p| p == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
