//! The durable-job runner: claims due jobs under a lease, runs each handler, and records how it
//! ended — done, retried with jittered backoff (a provider's `Retry-After` honoured), or dead after
//! its last attempt (with an event on the connection, so the failure is seen). Jobs retry on
//! their own schedule ([`retry_at`]), shorter at first than grant refreshes: a revocation is
//! worth finishing soon. Handlers are
//! idempotent: a job whose worker died is run again once its lease lapses.
//!
//! Kinds: `revoke_tokens` — RFC 7009 revocation of a disconnected grant's refresh token, then its
//! access token, at the provider's revocation endpoint, after which the sealed tokens are purged;
//! `deliver_event` — one connection event to the tenant's webhook, signed (Standard Webhooks).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use futures_util::StreamExt as _;
use switchboard_discovery::Fetcher;
use switchboard_discovery::oauth::{self, TokenError};
use switchboard_domain::DomainError;
use switchboard_domain::clock::Reading;
use switchboard_domain::connection::GrantKey;
use switchboard_domain::store::{
    DELIVER_EVENT, Job, JobEnd, PURGE_TENANT, PurgeStep, REDISCOVER_SERVER, REVOKE_TOKENS, Store,
};
use switchboard_domain::tenant::Actor;
use switchboard_domain::validate::Policy;
use url::Url;

use crate::refresh::ClientCredentials;
use crate::servers::ServerSetup;

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
        let jobs = self.store.claim_jobs(&self.owner, now, until, limit).await?;
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
                match self.store.finish_job(&job, &self.owner, &end).await {
                    Ok(true) if dead => self.dead_letter(&job, &end).await,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, job.id = %job.id, "recording a job's end failed; it will run again"),
                }
            })
            .await;
        Ok(n)
    }

    async fn run(&self, job: &Job, clock: &Reading) -> Result<JobEnd, DomainError> {
        match job.kind.as_str() {
            REVOKE_TOKENS => self.revoke_tokens(job, clock).await,
            DELIVER_EVENT => self.deliver_event(job, clock).await,
            REDISCOVER_SERVER => self.rediscover(job, clock).await,
            PURGE_TENANT => Ok(match self.store.purge_tenant(job.tenant_id).await? {
                PurgeStep::Purged => {
                    tracing::info!(tenant.id = %job.tenant_id, "tenant purged");
                    JobEnd::Done
                }
                PurgeStep::NotDeleting => JobEnd::Dead { error: "the tenant is not being deleted".into() },
                PurgeStep::Waiting { jobs } => JobEnd::Retry {
                    at: retry_at(clock, job.attempts, None),
                    error: format!("waiting for {jobs} revocation or delivery jobs of the tenant"),
                },
            }),
            other => Ok(JobEnd::Dead { error: format!("unknown job kind `{other}`") }),
        }
    }

    async fn revoke_tokens(&self, job: &Job, clock: &Reading) -> Result<JobEnd, DomainError> {
        let store = self.store.tenant(job.tenant_id);
        let p = &job.payload;
        let parse = |k: &str| p[k].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
        let (Some(agent), Some(server), Some(user), Some(sealed)) = (
            parse("agent_id"),
            parse("mcp_server_id"),
            p["user_id"].as_str(),
            p["sealed"].as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok()),
        ) else {
            // Already purged (a retry after the end was recorded elsewhere) or malformed.
            return Ok(JobEnd::Done);
        };
        let key = GrantKey {
            tenant_id: job.tenant_id,
            user_id: user.to_owned(),
            agent_id: agent.into(),
            mcp_server_id: server.into(),
        };
        let tokens = store.open_token_set(&key, &sealed)?;
        // What revoking needs was snapshotted when the grant was revoked (its server may be gone
        // by now); jobs queued before that snapshot existed read the server instead.
        let (url, creds) = if p.get("client_id").is_some() {
            let secret = match p["client_secret"]
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            {
                Some(sealed) => Some(store.open_job_secret(job.id, &sealed)?),
                None => None,
            };
            // Jobs queued before the method was snapshotted by name carry `client_auth`.
            let stored = p["token_endpoint_auth_method"].as_str().or(match p["client_auth"].as_str() {
                Some("post") => Some("client_secret_post"),
                Some(_) => Some("client_secret_basic"),
                None => None,
            });
            let advertised =
                serde_json::from_value(p["token_endpoint_auth_methods_supported"].clone()).unwrap_or_default();
            let creds = ClientCredentials::from_parts(
                p["client_id"].as_str().unwrap_or_default().to_owned(),
                secret,
                stored,
                advertised,
            );
            (p["revocation_url"].as_str().map(str::to_owned), creds)
        } else {
            let Ok(server) = store.get_mcp_server(key.mcp_server_id).await else {
                return Ok(JobEnd::Dead { error: "the server was deleted before its tokens could be revoked".into() });
            };
            (crate::consent::discovery_field(&server, "revocation_url"), ClientCredentials::of(&store, &server).await?)
        };
        let Some(url) = url.and_then(|u| Url::parse(&u).ok()) else {
            // The provider offers no revocation: purging the tokens here is all there is to do.
            return Ok(JobEnd::Done);
        };
        let mut steps = Vec::new();
        let pending = [("refresh_token", tokens.refresh_token.as_ref()), ("access_token", Some(&tokens.access_token))];
        for (hint, token) in pending {
            let Some(token) = token else { continue };
            let answer =
                oauth::revoke(&self.fetcher, &url, &creds.auth(), creds.advertised(), token.expose(), hint, &mut steps)
                    .await;
            match answer {
                Ok(_) => {}
                // RFC 7009 §2.2.1: this provider cannot revoke this kind of token; move on.
                Err(TokenError::Refused(code)) if code == "unsupported_token_type" => {}
                Err(TokenError::Transient { message, retry_after }) => {
                    return Ok(JobEnd::Retry { at: retry_at(clock, job.attempts, retry_after), error: message });
                }
                Err(e) => return Ok(JobEnd::Dead { error: e.to_string() }),
            }
        }
        Ok(JobEnd::Done)
    }

    /// Rediscovers one server (the daily background rediscovery).
    async fn rediscover(&self, job: &Job, clock: &Reading) -> Result<JobEnd, DomainError> {
        let Some((servers, policy)) = &self.servers else {
            return Ok(JobEnd::Retry {
                at: retry_at(clock, job.attempts, None),
                error: "this worker was started without what rediscovery needs (its public URL)".into(),
            });
        };
        let Some(id) = job
            .payload
            .get("mcp_server_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
        else {
            return Ok(JobEnd::Dead { error: "the job names no server".into() });
        };
        match servers.rediscover(job.tenant_id, id.into(), &Actor::System, *policy, true).await {
            Ok(done) => {
                tracing::info!(mcp_server.id = %id, kept_last_good = done.kept_last_good, grants_ended = done.grants_ended, "server rediscovered");
                Ok(JobEnd::Done)
            }
            // Deleted since it was queued, or edited while it ran (the edit rediscovered it): done.
            Err(DomainError::NotFound { .. } | DomainError::Conflict { .. }) => Ok(JobEnd::Done),
            Err(e) => Err(e),
        }
    }

    /// Delivers one event to the tenant's webhook (none set: nothing to do), signed in the Standard
    /// Webhooks format. The `webhook-id` is the event's, on every attempt, so receivers deduplicate;
    /// any 2xx is a delivery, anything else (3xx included) is retried.
    async fn deliver_event(&self, job: &Job, clock: &Reading) -> Result<JobEnd, DomainError> {
        let store = self.store.tenant(job.tenant_id);
        let Some(id) =
            job.payload.get("event_id").and_then(serde_json::Value::as_str).and_then(|s| uuid::Uuid::parse_str(s).ok())
        else {
            return Ok(JobEnd::Dead { error: "the job names no event".into() });
        };
        let (Some(webhook), Some(event)) = (store.webhook().await?, store.event(id).await?) else {
            return Ok(JobEnd::Done);
        };
        let Ok(url) = Url::parse(&webhook.url) else {
            return Ok(JobEnd::Dead { error: "the webhook URL is not a URL".into() });
        };
        let msg_id = format!("msg_{}", event.id.simple());
        let body = serde_json::json!({"type": event.event_type, "timestamp": event.created_at, "data": event.data})
            .to_string();
        // The database clock: receivers reject timestamps far from theirs, and a host clock can be off.
        let timestamp = clock.now().timestamp();
        let Some(signature) =
            switchboard_domain::webhook::sign(webhook.secret.expose(), &msg_id, timestamp, body.as_bytes())
        else {
            return Ok(JobEnd::Dead { error: "the webhook secret is malformed".into() });
        };
        let headers = switchboard_discovery::http::headers(&[
            ("content-type", "application/json"),
            ("webhook-id", &msg_id),
            ("webhook-timestamp", &timestamp.to_string()),
            ("webhook-signature", &signature),
        ]);
        Ok(match self.fetcher.post(&url, headers, body.into_bytes()).await {
            Ok(f) if f.status.is_success() => JobEnd::Done,
            Ok(f) => JobEnd::Retry {
                at: retry_at(clock, job.attempts, f.retry_after()),
                error: format!("the webhook answered {}", f.status.as_u16()),
            },
            Err(e) => JobEnd::Retry {
                at: retry_at(clock, job.attempts, None),
                error: format!("the webhook could not be reached ({e})"),
            },
        })
    }

    async fn dead_letter(&self, job: &Job, end: &JobEnd) {
        let error = match end {
            JobEnd::Dead { error } | JobEnd::Retry { error, .. } => error.clone(),
            JobEnd::Done => return,
        };
        tracing::error!(job.id = %job.id, job.kind = %job.kind, %error, "job dead-lettered after its last attempt");
        let p = &job.payload;
        let id = |k: &str| p[k].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
        if let (Some(connection), Some(agent), Some(server), Some(user)) =
            (id("connection_id"), id("agent_id"), id("mcp_server_id"), p["user_id"].as_str())
        {
            let key = GrantKey {
                tenant_id: job.tenant_id,
                user_id: user.to_owned(),
                agent_id: agent.into(),
                mcp_server_id: server.into(),
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

/// When to try a job again after its `attempts`-th attempt failed: 1 s, 5 s, 30 s, 2 min, 10 min,
/// 30 min, then hourly, each with up to 20 % jitter; a `Retry-After` the provider sent wins when
/// longer.
fn retry_at(clock: &Reading, attempts: i32, retry_after: Option<u64>) -> chrono::DateTime<Utc> {
    const SCHEDULE: [i64; 7] = [1, 5, 30, 120, 600, 1800, 3600];
    let jitter = switchboard_domain::crypto::random_bytes::<1>().map_or(0.5, |b| f64::from(b[0]) / 255.0);
    let step = usize::try_from(attempts.max(1) - 1).unwrap_or(0).min(SCHEDULE.len() - 1);
    let base = (SCHEDULE.get(step).copied().unwrap_or(3600) as f64 * (1.0 + 0.2 * jitter)) as i64;
    let secs = retry_after.map_or(base, |r| base.max(i64::try_from(r).unwrap_or(i64::MAX)));
    clock.now() + chrono::TimeDelta::seconds(secs.min(3600))
}
