//! Keeping grants fresh: the refresh transition of the connection state machine.
//!
//! A refresh runs under the grant's database lease (one refresh per grant cluster-wide; Redis is
//! never the lock), calls the grant's pinned token endpoint with its `resource`, and stores the
//! result with compare-and-swap on the row's version — so a worker whose lease lapsed while it
//! waited cannot overwrite a newer token set. What the provider answered decides the next state:
//!
//! | answer | grant |
//! |---|---|
//! | tokens | stays `connected`; the rotated refresh token is stored before the lease is released |
//! | `invalid_grant` | re-read first (a peer may have rotated); else `needs_reauth`, one event |
//! | timeout, 5xx, 429, DNS, garbage | stays usable while its access token lives; retried with backoff (`Retry-After` honoured) |
//!
//! When the provider answered but the write fails, the new token set is kept in memory and the
//! write retried: a rotated refresh token that was spent must not be lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use switchboard_discovery::Fetcher;
use switchboard_discovery::oauth::{self, TokenError};
use switchboard_domain::clock::Reading;
use switchboard_domain::connection::{ConnectionStatus, TokenSet, refresh_backoff};
use switchboard_domain::crypto::Secret;
use switchboard_domain::store::{DueRefresh, RefreshFailure, RefreshRow, Store, TenantStore};
use switchboard_domain::{DomainError, TenantId};
use url::Url;

use crate::changes::{Change, Changes};

use crate::client_auth::ClientCredentials;

/// How one refresh attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Refreshed,
    /// Another worker held the lease, or refreshed first.
    Skipped,
    /// Our write lost the compare-and-swap: a newer token set was already stored.
    Fenced,
    /// `invalid_grant`, but a peer had rotated the token meanwhile: nothing to do.
    PeerRotated,
    /// Will be retried; the grant stays usable while its access token lives.
    Transient,
    NeedsReauth,
    /// The grant has no refresh token (or no token endpoint): nothing to refresh.
    NotRefreshable,
    /// The provider answered, the database did not take the write after retries.
    WriteFailed,
}

/// Counts of a [`Refresher::tick`].
pub type TickReport = HashMap<Outcome, usize>;

/// Refreshes grants. Cheap to clone; one per worker process (its `owner` names it in leases).
#[derive(Clone)]
pub struct Refresher {
    store: Store,
    fetcher: Fetcher,
    owner: String,
    /// How long a claim lasts: longer than the token call's deadline (the fetcher's total timeout)
    /// plus the write, so a lease only lapses when its holder is paused or dead.
    lease: Duration,
    /// In-process single flight per connection (the database lease is the cluster-wide one).
    inflight: Arc<Mutex<HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<()>>>>>,
    /// Client credentials per server for a few seconds: grants of one server share them, and a
    /// pass of hundreds of refreshes should not read the same server hundreds of times.
    clients: Arc<Mutex<ClientCache>>,
    /// Where a refresh's outcome is announced (new tokens, a grant that needs the user again):
    /// the gateway's views of the grant drop what they held.
    changes: Changes,
}

type ClientCache = HashMap<switchboard_domain::McpServerId, (Arc<ClientCredentials>, std::time::Instant)>;

/// How close to its expiry (beyond the caller's margin) an access token is checked against the
/// database's clock rather than the process clock: more than any plausible clock skew.
const NEAR_EXPIRY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How long one attempt to store a refreshed token set may take before it is retried.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// How long client credentials are reused without reading the server again.
const CLIENT_TTL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Refresher {
    #[must_use]
    pub fn new(store: Store, fetcher: Fetcher, owner: String) -> Self {
        Self {
            store,
            fetcher,
            owner,
            lease: Duration::from_secs(30),
            inflight: Arc::default(),
            clients: Arc::default(),
            changes: Changes::default(),
        }
    }

    /// Where this refresher announces changes (the worker's housekeeping uses it too).
    pub(crate) fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The same refresher, announcing what its refreshes change on `changes`.
    #[must_use]
    pub fn with_changes(mut self, changes: Changes) -> Self {
        self.changes = changes;
        self
    }

    /// The same refresher with another lease length.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// One pass: claims up to `limit` due grants and refreshes them, 16 at a time. Cost grows with
    /// what is due, not with the number of grants. Claim no more than can finish within the lease
    /// (the worker claims 16 per pass: one round of concurrent refreshes).
    pub async fn tick(&self, limit: u64) -> Result<TickReport, DomainError> {
        // What is due and how long a lease lasts are read on the database's clock, which every
        // worker shares: a host clock minutes off neither steals live leases nor skips due grants.
        let clock = self.store.database_now().await?;
        let now = clock.now();
        let until = now + chrono::TimeDelta::from_std(self.lease).unwrap_or(chrono::TimeDelta::seconds(30));
        let claimed = self.store.queue().claim_due_refreshes(&self.owner, now, until, limit).await?;
        let clock = &clock;
        let outcomes: Vec<Outcome> = futures_util::stream::iter(claimed)
            .map(|d| async move {
                match self.refresh_due(d, clock).await {
                    Ok(o) => o,
                    Err(e) => {
                        // Ours, not the provider's: let go of the lease and try again — soon when
                        // the database was only out of reach, later for anything else.
                        tracing::warn!(error = %e, tenant.id = %d.tenant_id, "a refresh failed on our side");
                        let wait = match e {
                            DomainError::Unavailable(_) => chrono::TimeDelta::seconds(5),
                            _ => chrono::TimeDelta::minutes(5),
                        };
                        let retry_at = clock.now() + wait;
                        if let Err(e) =
                            self.store.tenant(d.tenant_id).release_refresh(d.connection_id, &self.owner, retry_at).await
                        {
                            tracing::warn!(error = %e, "releasing a refresh lease failed; it lapses on its own");
                        }
                        Outcome::Transient
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut report = TickReport::new();
        for o in outcomes {
            *report.entry(o).or_default() += 1;
        }
        Ok(report)
    }

    /// A grant this worker holds the lease of.
    async fn refresh_due(&self, d: DueRefresh, clock: &Reading) -> Result<Outcome, DomainError> {
        let store = self.store.tenant(d.tenant_id);
        let row = store.refresh_row(d.connection_id).await?;
        if row.version != d.version || row.lease_owner.as_deref() != Some(self.owner.as_str()) {
            return Ok(Outcome::Skipped);
        }
        self.refresh_claimed(&store, row, clock).await
    }

    /// Refreshes now if the grant's access token expires within `within` (the integrators'
    /// access-token call), single-flight in this process and under the database lease across
    /// processes. Returns the grant as it stands afterwards.
    #[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
    pub async fn ensure_fresh(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        within: chrono::TimeDelta,
    ) -> Result<RefreshRow, DomainError> {
        self.ensure(tenant, id, within, None).await
    }

    /// Refreshes now because the upstream server refused `refused` (the access token the caller
    /// presented), however far its expiry — unless the grant already holds another token (a
    /// concurrent caller refreshed it), which is returned as it is. Single-flight like
    /// [`Self::ensure_fresh`], so a burst of refusals costs the provider one refresh.
    #[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
    pub async fn replace_refused(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        refused: &str,
    ) -> Result<RefreshRow, DomainError> {
        self.ensure(tenant, id, chrono::TimeDelta::zero(), Some(refused)).await
    }

    async fn ensure(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
        within: chrono::TimeDelta,
        refused: Option<&str>,
    ) -> Result<RefreshRow, DomainError> {
        let store = self.store.tenant(tenant);
        let gate = {
            let mut map = self.inflight.lock().map_err(|_| DomainError::internal("refresh map poisoned"))?;
            map.entry(id).or_default().clone()
        };
        let _one = gate.lock().await;
        let deadline = tokio::time::Instant::now() + self.lease;
        let mut clock: Option<Reading> = None;
        loop {
            let row = store.refresh_row(id).await?;
            let expires_at = row.tokens.as_ref().map(|t| t.expires_at);
            // Far from expiry the process clock decides (no round trip on the hot path); near it,
            // the database's clock does, as it does for every worker.
            let near =
                expires_at.flatten().is_some_and(|e| e <= switchboard_domain::clock::now() + within + NEAR_EXPIRY);
            let now = match (near, clock) {
                (false, _) => switchboard_domain::clock::now(),
                (true, Some(c)) => c.now(),
                (true, None) => {
                    let c = self.store.database_now().await?;
                    clock = Some(c);
                    c.now()
                }
            };
            let fresh = match refused {
                // The server refused this token: only a different one is fresh.
                Some(refused) => row.tokens.as_ref().is_some_and(|t| t.access_token.expose() != refused),
                None => expires_at.is_some_and(|e| e.is_none_or(|e| e > now + within)),
            };
            let refreshable = row.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some());
            if fresh || !refreshable || !matches!(row.status, ConnectionStatus::Connected | ConnectionStatus::Expired) {
                return Ok(row);
            }
            let clock = self.store.database_now().await?;
            let now = clock.now();
            let until = now + chrono::TimeDelta::from_std(self.lease).unwrap_or(chrono::TimeDelta::seconds(30));
            if store.claim_refresh(id, row.version, &self.owner, now, until).await? {
                // The refresh runs as a task of its own: a caller that goes away (a request cut
                // off by its deadline) must not cancel it between the provider's answer and the
                // write, which would lose a rotated refresh token.
                let this = self.clone();
                let refresh = tokio::spawn(async move {
                    let store = this.store.tenant(tenant);
                    let claimed = store.refresh_row(id).await?;
                    this.refresh_claimed(&store, claimed, &clock).await
                });
                refresh.await.map_err(|e| DomainError::internal_from("a refresh task failed", e))??;
                return store.refresh_row(id).await;
            }
            // Another worker holds the lease: wait for its write (bounded by the lease).
            if tokio::time::Instant::now() >= deadline {
                return Ok(row);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Refreshes a grant whose lease this worker took when `clock` was read (just before the
    /// claim), and announces the grant's change (its tokens, or its status) unless nothing was
    /// written.
    async fn refresh_claimed(
        &self,
        store: &TenantStore<'_>,
        row: RefreshRow,
        clock: &Reading,
    ) -> Result<Outcome, DomainError> {
        let change = Change::grant(&row.key);
        let outcome = self.refresh_claimed_unannounced(store, row, clock).await;
        if !matches!(outcome, Ok(Outcome::Skipped | Outcome::Fenced | Outcome::WriteFailed)) {
            self.changes.publish(change);
        }
        outcome
    }

    async fn refresh_claimed_unannounced(
        &self,
        store: &TenantStore<'_>,
        row: RefreshRow,
        clock: &Reading,
    ) -> Result<Outcome, DomainError> {
        let Some(refresh_token) = row.tokens.as_ref().and_then(|t| t.refresh_token.clone()) else {
            return self.give_up(store, &row, "the grant has no refresh token", clock).await;
        };
        let Some(token_url) = row.token_endpoint.as_deref().and_then(|u| Url::parse(u).ok()) else {
            return self.give_up(store, &row, "the grant has no token endpoint", clock).await;
        };
        let creds = self.client_credentials(store, row.key.mcp_server_id).await?;
        // The lease must outlast the token call: a worker that stalled since its claim (a paused
        // database, a paused process) may hold a lease that is about to lapse, and presenting the
        // refresh token then could race the next holder. Measured on the monotonic clock.
        // (A lease configured shorter than the call's deadline — tests do that — asks for half.)
        let needed = (self.fetcher.limits().total_timeout + Duration::from_secs(2)).min(self.lease / 2);
        if clock.age() + needed >= self.lease {
            tracing::warn!(tenant.id = %row.key.tenant_id, "a refresh lease is too close to lapsing; leaving it to the next claim");
            store.release_refresh(row.id, &self.owner, clock.now()).await?;
            return Ok(Outcome::Skipped);
        }
        let mut steps = Vec::new();
        let answer = oauth::refresh(
            &self.fetcher,
            &token_url,
            &creds.auth(),
            creds.advertised(),
            refresh_token.expose(),
            row.resource.as_deref(),
            &mut steps,
        )
        .await;
        // A method that worked after another was refused is kept — after the rotated tokens are
        // stored, so nothing stands between the provider's answer and that write.
        let better = answer.as_ref().ok().map(|t| t.client_auth).filter(|m| *m != creds.method());
        match answer {
            Ok(new) => {
                // The provider has rotated: from here until the write, a crash loses the new set.
                crate::failpoint("refresh.after_provider_answer");
                let old = row.tokens.clone();
                let scopes: Vec<String> = new
                    .scope
                    .as_deref()
                    .map_or_else(|| row.scopes.clone(), |s| s.split_ascii_whitespace().map(str::to_owned).collect());
                let set = TokenSet {
                    access_token: Secret::new(new.access_token),
                    // No new refresh token: the old one stays valid (RFC 6749 §6).
                    refresh_token: new.refresh_token.map(Secret::new).or(old.and_then(|o| o.refresh_token)),
                    token_type: new.token_type,
                    expires_at: new.expires_in.map(|s| switchboard_domain::connection::expiry(clock.now(), s)),
                    scope: new.scope,
                };
                let stored = self.persist(store, &row, &set, &scopes, clock).await;
                if let Some(method) = better {
                    creds.keep(store, method).await;
                    if let Ok(mut m) = self.clients.lock() {
                        m.remove(&row.key.mcp_server_id);
                    }
                }
                stored
            }
            Err(TokenError::InvalidGrant) => {
                // A peer may have rotated while we waited: only an unchanged grant is dead.
                let again = store.refresh_row(row.id).await?;
                let same_token = again.tokens.as_ref().and_then(|t| t.refresh_token.as_ref()).map(Secret::expose)
                    == Some(refresh_token.expose());
                if again.version != row.version || !same_token {
                    return Ok(Outcome::PeerRotated);
                }
                if store
                    .refresh_failed(
                        &row,
                        &RefreshFailure::Reauth {
                            message: "the provider no longer accepts this grant; the user must connect again".into(),
                        },
                        clock.now(),
                    )
                    .await?
                {
                    store.record_issuance(&row.key, "refused", Some("invalid_grant".into()), &row.scopes, None).await?;
                }
                Ok(Outcome::NeedsReauth)
            }
            Err(e) => {
                let retry_after = match &e {
                    TokenError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let jitter = switchboard_domain::crypto::random_bytes::<1>().map_or(0.5, |b| f64::from(b[0]) / 255.0);
                let failures = u32::try_from(row.refresh_failures.max(0)).unwrap_or(0);
                let retry_at = clock.now() + refresh_backoff(failures, jitter, retry_after);
                store
                    .refresh_failed(&row, &RefreshFailure::Transient { retry_at, message: e.to_string() }, clock.now())
                    .await?;
                Ok(Outcome::Transient)
            }
        }
    }

    async fn client_credentials(
        &self,
        store: &TenantStore<'_>,
        server: switchboard_domain::McpServerId,
    ) -> Result<Arc<ClientCredentials>, DomainError> {
        let cached = self
            .clients
            .lock()
            .ok()
            .and_then(|m| m.get(&server).filter(|(_, at)| at.elapsed() < CLIENT_TTL).map(|(c, _)| c.clone()));
        if let Some(c) = cached {
            return Ok(c);
        }
        let creds = Arc::new(ClientCredentials::of(store, &store.get_mcp_server(server).await?).await?);
        if let Ok(mut m) = self.clients.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(server, (creds.clone(), std::time::Instant::now()));
        }
        Ok(creds)
    }

    /// Stores a refreshed set; when the database refuses, keeps it and retries (the provider may
    /// already have spent the old refresh token).
    async fn persist(
        &self,
        store: &TenantStore<'_>,
        row: &RefreshRow,
        set: &TokenSet,
        scopes: &[String],
        clock: &Reading,
    ) -> Result<Outcome, DomainError> {
        // Retried until the lease would lapse: each attempt has a deadline of its own (a paused
        // database holds a statement forever; the next attempt takes a fresh connection), and a
        // write whose answer was lost either landed (the retry is fenced, and the set is stored)
        // or did not (the retry lands it).
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            // At least one attempt, even with the lease spent: the write is fenced by the version,
            // so it cannot overwrite a newer set, and not trying would drop a rotated token.
            let left = self.lease.saturating_sub(clock.age() + Duration::from_secs(1));
            if left.is_zero() && attempt > 0 {
                break;
            }
            let deadline = if left.is_zero() { WRITE_DEADLINE } else { left.min(WRITE_DEADLINE) };
            let write = tokio::time::timeout(deadline, store.store_refreshed(row, set, scopes, clock.now()));
            match write.await {
                // The issuance record was written in the same transaction.
                Ok(Ok(true)) => return Ok(Outcome::Refreshed),
                Ok(Ok(false)) => {
                    // Fenced, or our own earlier attempt landed although its answer was lost.
                    // (The access token tells: a provider that does not rotate keeps the refresh token.)
                    let stored = store.token_set(&row.key).await.ok().flatten();
                    let ours = stored.is_some_and(|t| t.access_token.expose() == set.access_token.expose());
                    return Ok(if ours && attempt > 0 { Outcome::Refreshed } else { Outcome::Fenced });
                }
                Ok(Err(e)) => tracing::warn!(error = %e, attempt, "storing a refreshed token set failed; retrying"),
                Err(_) => tracing::warn!(attempt, "storing a refreshed token set timed out; retrying"),
            }
            attempt += 1;
            tokio::time::sleep(delay.min(left)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        tracing::error!(
            "a refreshed token set could not be stored; the grant will need a new consent if the provider rotated"
        );
        Ok(Outcome::WriteFailed)
    }

    async fn give_up(
        &self,
        store: &TenantStore<'_>,
        row: &RefreshRow,
        why: &str,
        clock: &Reading,
    ) -> Result<Outcome, DomainError> {
        // Not an error of the grant: it simply cannot be refreshed. Park it (no further attempts).
        let far = clock.now() + chrono::TimeDelta::days(3650);
        store
            .refresh_failed(row, &RefreshFailure::Transient { retry_at: far, message: why.into() }, clock.now())
            .await?;
        Ok(Outcome::NotRefreshable)
    }
}
