//! The durable-job runner: claims due jobs under a lease, runs each handler, and records how it
//! ended — done, retried with jittered backoff (a provider's `Retry-After` honoured), or dead after
//! its last attempt (with an event on the connection, so the failure is seen). Jobs retry on
//! their own schedule ([`retry::retry_at`]), shorter at first than grant refreshes: a revocation
//! is worth finishing soon. Handlers are idempotent: a job whose worker died is run again once its
//! lease lapses.
//!
//! One file per kind of [`Job`]: [`revoke_tokens`], [`deliver_event`], [`rediscover_server`],
//! [`purge_tenant`]. A stored job this code cannot read (an unknown kind, a payload of another
//! shape) is dead at once, with the reason.

mod deliver_event;
mod purge_tenant;
mod rediscover_server;
mod retry;
mod revoke_tokens;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use switchboard_discovery::Fetcher;
use switchboard_domain::DomainError;
use switchboard_domain::clock::Reading;
use switchboard_domain::connection::GrantKey;
use switchboard_domain::job::Job;
use switchboard_domain::store::{ClaimedJob, JobEnd, Store};
use switchboard_domain::validate::Policy;

use crate::servers::ServerSetup;
use retry::retry_at;

/// Runs jobs. Cheap to clone.
#[derive(Clone)]
pub struct JobRunner {
    store: Store,
    fetcher: Fetcher,
    owner: String,
    lease: Duration,
    /// What rediscovery needs (the public URL for registrations, the URL policy); a runner
    /// without it leaves rediscovery jobs to one that has it.
    servers: Option<(Arc<ServerSetup>, Policy)>,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl JobRunner {
    #[must_use]
    pub fn new(store: Store, fetcher: Fetcher, owner: String) -> Self {
        Self { store, fetcher, owner, lease: Duration::from_secs(60), servers: None }
    }

    /// The same runner, able to run rediscovery jobs.
    #[must_use]
    pub fn with_servers(mut self, servers: Arc<ServerSetup>, policy: Policy) -> Self {
        self.servers = Some((servers, policy));
        self
    }

    /// Whether this runner can run rediscovery jobs (and so its worker queues them).
    #[must_use]
    pub fn rediscovers(&self) -> bool {
        self.servers.is_some()
    }

    /// The same runner with another lease length.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Claims and runs up to `limit` due jobs, 8 at a time; returns how many ran.
    pub async fn tick(&self, limit: u64) -> Result<usize, DomainError> {
        // Leases and retry times are measured on the database's clock, which every worker shares.
        let clock = self.store.database_now().await?;
        let now = clock.now();
        let until = now + chrono::TimeDelta::from_std(self.lease).unwrap_or(chrono::TimeDelta::seconds(60));
        let jobs = self.store.queue().claim_jobs(&self.owner, now, until, limit).await?;
        let clock = &clock;
        let n = jobs.len();
        futures_util::stream::iter(jobs)
            .for_each_concurrent(8, |job| async move {
                let end = self.run(&job, clock).await.unwrap_or_else(|e| JobEnd::Retry { at: retry_at(clock, job.attempts, None), error: e.to_string() });
                if let JobEnd::Dead { error } | JobEnd::Retry { error, .. } = &end {
                    tracing::warn!(job.id = %job.id, job.kind = %job.kind, attempt = job.attempts, %error, "job attempt failed");
                }
                let dead = matches!(end, JobEnd::Dead { .. })
                    || (matches!(end, JobEnd::Retry { .. }) && job.attempts >= job.max_attempts);
                match self.store.queue().finish_job(&job, &self.owner, &end).await {
                    Ok(true) if dead => self.dead_letter(&job, &end).await,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, job.id = %job.id, "recording a job's end failed; it will run again"),
                }
            })
            .await;
        Ok(n)
    }

    async fn run(&self, job: &ClaimedJob, clock: &Reading) -> Result<JobEnd, DomainError> {
        let spec = match &job.job {
            Ok(spec) => spec,
            Err(e) => return Ok(JobEnd::Dead { error: format!("the job cannot be read ({e})") }),
        };
        match spec {
            Job::RevokeTokens(r) => revoke_tokens::run(&self.store, &self.fetcher, job, r, clock).await,
            Job::DeliverEvent { event_id } => {
                deliver_event::run(&self.store, &self.fetcher, job, *event_id, clock).await
            }
            Job::RediscoverServer { mcp_server_id } => {
                rediscover_server::run(self.servers.as_ref(), job, *mcp_server_id, clock).await
            }
            Job::PurgeTenant => purge_tenant::run(&self.store, job, clock).await,
        }
    }

    async fn dead_letter(&self, job: &ClaimedJob, end: &JobEnd) {
        let error = match end {
            JobEnd::Dead { error } | JobEnd::Retry { error, .. } => error.clone(),
            JobEnd::Done => return,
        };
        tracing::error!(job.id = %job.id, job.kind = %job.kind, %error, "job dead-lettered after its last attempt");
        // A revocation that never reached the provider is told on its connection.
        if let Ok(Job::RevokeTokens(r)) = &job.job {
            let connection = r.connection_id;
            let key = GrantKey {
                tenant_id: job.tenant_id,
                user_id: r.user_id.clone(),
                agent_id: r.agent_id,
                mcp_server_id: r.mcp_server_id,
            };
            let data =
                serde_json::json!({"job_id": job.id, "job_kind": job.kind, "attempts": job.attempts, "error": error});
            if let Err(e) = self
                .store
                .tenant(job.tenant_id)
                .record_connection_event(connection, &key, "job.dead_lettered", data)
                .await
            {
                tracing::warn!(error = %e, "recording a dead-letter event failed");
            }
        }
    }
}
