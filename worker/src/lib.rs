//! The connection lifecycle and its background work.
//!
//! [`consent`] holds the transitions a request drives (connect, consent completion, check,
//! disconnect); [`refresh`] the one the worker drives on its own: proactive refresh under a
//! database lease; [`jobs`] the durable jobs (revocation at the provider, event delivery,
//! rediscovery, tenant purge); [`servers`] discovery, hydration and client registration.
//! [`Worker::run`] ticks both, and once a minute does its housekeeping (expired consent flows,
//! old finished jobs, the daily rediscoveries); `switchboard worker` runs it alone and
//! `switchboard serve` runs it in-process by default.

pub mod client_auth;
pub mod consent;
pub mod jobs;
pub mod refresh;
pub mod servers;
pub mod wake;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use switchboard_discovery::Fetcher;
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
    /// A worker named after this host and process (its name marks the leases it holds).
    #[must_use]
    pub fn new(store: Store, fetcher: Fetcher) -> Self {
        let owner = format!(
            "{}:{}:{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        // The lease outlives a token call (10 s deadline) with room to spare; tests shorten it.
        let lease = std::env::var("SWITCHBOARD_WORKER_LEASE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(30), Duration::from_secs);
        let deadline = fetcher.limits().total_timeout;
        if lease <= deadline + Duration::from_secs(2) {
            tracing::warn!(
                lease_secs = lease.as_secs(),
                deadline_secs = deadline.as_secs(),
                "SWITCHBOARD_WORKER_LEASE_SECS is not longer than a token call may take; a slow provider can outlive a lease"
            );
        }
        Self {
            refresher: refresh::Refresher::new(store.clone(), fetcher.clone(), owner.clone()).with_lease(lease),
            jobs: jobs::JobRunner::new(store.clone(), fetcher, owner).with_lease(lease),
            store,
            wakeups: wake::Wakeups::in_process(),
            // Tests lengthen it to show that wake-ups, not polling, started the work.
            interval: std::env::var("SWITCHBOARD_WORKER_POLL_MS")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis),
        }
    }

    #[must_use]
    pub fn refresher(&self) -> &refresh::Refresher {
        &self.refresher
    }

    #[must_use]
    pub fn jobs(&self) -> &jobs::JobRunner {
        &self.jobs
    }

    /// The same worker, able to run rediscovery jobs (and to queue them: [`Worker::housekeeping`]).
    #[must_use]
    pub fn with_servers(
        mut self,
        servers: std::sync::Arc<servers::ServerSetup>,
        policy: switchboard_domain::validate::Policy,
    ) -> Self {
        self.jobs = self.jobs.with_servers(servers, policy);
        self
    }

    /// The same worker, woken by `wakeups` (shared with the API in one process; over Redis
    /// between processes) as well as by its poll.
    #[must_use]
    pub fn with_wakeups(mut self, wakeups: wake::Wakeups) -> Self {
        self.wakeups = wakeups;
        self
    }

    /// What runs once a minute: consent flows past their ten minutes are swept, finished jobs
    /// older than a week purged, and servers due for their daily rediscovery queued.
    pub async fn housekeeping(&self) {
        // The database's clock, which leases and due dates are measured on.
        let now = self.store.database_now().await.map_or_else(|_| switchboard_domain::clock::now(), |c| c.now());
        match self.store.sweep_expired_flows(now).await {
            Ok((0, 0)) => {}
            Ok((flows, grants)) => tracing::info!(flows, grants, "expired consent flows swept"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired consent flows failed"),
        }
        if let Err(e) = self.store.purge_done_jobs(now, now - chrono::TimeDelta::days(7)).await {
            tracing::warn!(error = %e, "purging finished jobs failed");
        }
        if self.jobs.rediscovers() {
            match self.store.enqueue_due_rediscoveries(now, 100).await {
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
