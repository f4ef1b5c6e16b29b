//! The storage half of the refresh protocol (DESIGN §4, security-reliability §4.2):
//!
//! - **due**: connections whose `next_refresh_at` has passed, found through its index — a tick
//!   costs what is due, not what exists;
//! - **lease**: one `UPDATE … WHERE version = ? AND lease expired` per claim; the row's `version`
//!   is the fencing token, and no database connection is held across the provider's answer;
//! - **write**: the new token set is stored with compare-and-swap on `version`, in the same
//!   transaction as the event that reports it; a stale writer (its lease lapsed and another
//!   worker refreshed) changes nothing;
//! - **failure**: transient failures reschedule with backoff and keep the grant usable while its
//!   access token lives; a definitive `invalid_grant` (after a re-read) moves the grant to
//!   `needs_reauth` once, with exactly one event.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::entities::connections;
use super::{QueueStore, TenantStore, json_err, map_err};
use crate::connection::{ConnectionStatus, GrantKey, LastError, TokenSet, next_refresh_at};
use crate::crypto::SealContext;
use crate::{DomainError, TenantId};

/// A connection due for refresh, as found (not yet claimed).
#[derive(Clone, Copy, Debug)]
pub struct DueRefresh {
    pub tenant_id: TenantId,
    pub connection_id: uuid::Uuid,
    pub version: i64,
}

/// What a worker needs to refresh one grant. `Debug` shows no token.
#[derive(Clone, Debug)]
pub struct RefreshRow {
    pub id: uuid::Uuid,
    pub key: GrantKey,
    pub status: ConnectionStatus,
    pub version: i64,
    pub tokens: Option<TokenSet>,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    pub refresh_failures: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// How a refresh attempt ended, for [`TenantStore::refresh_failed`].
#[derive(Clone, Debug)]
pub enum RefreshFailure {
    /// Retry at `retry_at`; the grant stays usable while its access token lives.
    Transient { retry_at: DateTime<Utc>, message: String },
    /// The provider refused the grant for good: `needs_reauth`.
    Reauth { message: String },
}

fn lease_free(now: DateTime<Utc>) -> Condition {
    Condition::any().add(connections::Column::LeaseUntil.is_null()).add(connections::Column::LeaseUntil.lt(now))
}

impl QueueStore<'_> {
    /// Connections due for refresh (connected, or expired after transient failures), oldest due
    /// first, leases free. Cross-tenant by nature: this is the worker's queue.
    pub async fn due_refreshes(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<DueRefresh>, DomainError> {
        let rows: Vec<(uuid::Uuid, uuid::Uuid, i64)> = connections::Entity::find()
            .select_only()
            .columns([connections::Column::TenantId, connections::Column::Id, connections::Column::Version])
            .filter(connections::Column::NextRefreshAt.lte(now))
            .filter(connections::Column::Status.is_in(["connected", "expired"]))
            .filter(lease_free(now))
            .order_by_asc(connections::Column::NextRefreshAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(tenant, id, version)| DueRefresh { tenant_id: TenantId(tenant), connection_id: id, version })
            .collect())
    }
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct ClaimedRefresh {
    tenant_id: uuid::Uuid,
    id: uuid::Uuid,
    version: i64,
}

impl QueueStore<'_> {
    /// Finds up to `limit` due grants and takes their leases for `owner` until `until`: on
    /// Postgres in one statement (`FOR UPDATE SKIP LOCKED`, so concurrent workers get disjoint
    /// batches); on SQLite, one compare-and-swap per row. Returns the claimed grants.
    pub async fn claim_due_refreshes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueRefresh>, DomainError> {
        use sea_orm::{DbBackend, FromQueryResult, Statement};
        if self.db.get_database_backend() == DbBackend::Postgres {
            let sql = "UPDATE connections SET lease_owner = $1, lease_until = $2 \
                       WHERE id IN (SELECT id FROM connections WHERE next_refresh_at <= $3 \
                       AND status IN ('connected', 'expired') AND (lease_until IS NULL OR lease_until < $3) \
                       ORDER BY next_refresh_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                       RETURNING tenant_id, id, version";
            let rows = ClaimedRefresh::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [owner.into(), until.into(), now.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()],
            ))
            .all(&self.db)
            .await
            .map_err(map_err)?;
            return Ok(rows
                .into_iter()
                .map(|r| DueRefresh { tenant_id: TenantId(r.tenant_id), connection_id: r.id, version: r.version })
                .collect());
        }
        let mut claimed = Vec::new();
        for d in self.due_refreshes(now, limit).await? {
            if self.tenant(d.tenant_id).claim_refresh(d.connection_id, d.version, owner, now, until).await? {
                claimed.push(d);
            }
        }
        Ok(claimed)
    }
}

impl TenantStore<'_> {
    fn token_ctx(&self, key: &GrantKey) -> SealContext<'static> {
        SealContext {
            tenant: self.tenant_id,
            table: "connections",
            column: "token_set",
            row: super::connections::grant_row(key),
        }
    }

    /// Takes the refresh lease of a connection until `until`, if nobody holds it and the row is
    /// still at `version`. One statement; `true` when this caller holds the lease.
    pub async fn claim_refresh(
        &self,
        id: uuid::Uuid,
        version: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, DomainError> {
        let res = self
            .update::<connections::Entity>()
            .col_expr(connections::Column::LeaseOwner, Expr::value(owner))
            .col_expr(connections::Column::LeaseUntil, Expr::value(until))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::Version.eq(version))
            .filter(lease_free(now))
            .exec(&self.store.db)
            .await
            .map_err(map_err)?;
        Ok(res.rows_affected == 1)
    }

    /// Gives up `owner`'s lease after a failure on our side (not the provider's), with the next
    /// attempt at `retry_at`.
    pub async fn release_refresh(
        &self,
        id: uuid::Uuid,
        owner: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.update::<connections::Entity>()
            .col_expr(connections::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(connections::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(connections::Column::NextRefreshAt, Expr::value(retry_at))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::LeaseOwner.eq(owner))
            .exec(&self.store.db)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// The connection with its token set opened.
    pub async fn refresh_row(&self, id: uuid::Uuid) -> Result<RefreshRow, DomainError> {
        let m = self
            .find_by_id::<connections::Entity, _>(id)
            .one(&self.store.db)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::NotFound { kind: "connection", id: id.to_string() })?;
        let key = GrantKey {
            tenant_id: self.tenant_id,
            user_id: m.user_id.clone(),
            agent_id: m.agent_id.into(),
            mcp_server_id: m.mcp_server_id.into(),
        };
        let tokens = match &m.token_set {
            Some(sealed) => {
                let plain = self
                    .store
                    .envelope
                    .open(&self.token_ctx(&key), sealed)
                    .map_err(|e| DomainError::internal_from("token set", e))?;
                Some(serde_json::from_slice(&plain).map_err(json_err("token set"))?)
            }
            None => None,
        };
        Ok(RefreshRow {
            id: m.id,
            status: m.status.parse().map_err(|e| DomainError::internal_from(format!("connection {}", m.id), e))?,
            version: m.version,
            tokens,
            issuer: m.issuer,
            token_endpoint: m.token_endpoint,
            resource: m.resource,
            scopes: serde_json::from_str(&m.scopes).map_err(json_err("connection scopes"))?,
            refresh_failures: m.refresh_failures,
            lease_owner: m.lease_owner,
            lease_until: m.lease_until,
            key,
        })
    }

    /// Stores a refreshed token set if the row is still at `read_version` (compare-and-swap),
    /// releases the lease, schedules the next refresh, and writes the issuance record and
    /// `connection.refreshed` (or `connection.recovered` after failures) in the same transaction. `false`: fenced — another
    /// writer got there first and nothing was changed. `now` is the database time
    /// ([`crate::store::Store::database_now`]): the next refresh is scheduled from it.
    pub async fn store_refreshed(
        &self,
        row: &RefreshRow,
        tokens: &TokenSet,
        scopes: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, DomainError> {
        let plain = serde_json::to_vec(tokens).map_err(json_err("token set"))?;
        let sealed = self
            .store
            .envelope
            .seal(&self.token_ctx(&row.key), &plain)
            .map_err(|e| DomainError::internal_from("sealing a token set failed", e))?;
        let (_write, txn) = self.store.begin_write().await?;
        let res = self
            .update::<connections::Entity>()
            .col_expr(connections::Column::TokenSet, Expr::value(sealed))
            .col_expr(connections::Column::ExpiresAt, Expr::value(tokens.expires_at))
            .col_expr(connections::Column::NextRefreshAt, Expr::value(next_refresh_at(tokens, now)))
            .col_expr(
                connections::Column::Scopes,
                Expr::value(serde_json::to_string(scopes).map_err(json_err("scopes"))?),
            )
            .col_expr(connections::Column::Status, Expr::value("connected"))
            .col_expr(connections::Column::LastError, Expr::value(Option::<String>::None))
            .col_expr(connections::Column::RefreshFailures, Expr::value(0))
            .col_expr(connections::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(connections::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(connections::Column::Version, Expr::col(connections::Column::Version).add(1))
            .col_expr(connections::Column::UpdatedAt, Expr::value(now))
            .filter(connections::Column::Id.eq(row.id))
            .filter(connections::Column::Version.eq(row.version))
            .filter(connections::Column::Status.is_in(["connected", "expired"]))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if res.rows_affected != 1 {
            return Ok(false);
        }
        super::issuances::insert_issuance(&txn, &row.key, "issued", Some("refresh".into()), scopes, tokens.expires_at)
            .await?;
        let recovered = row.refresh_failures > 0 || row.status != ConnectionStatus::Connected;
        let event = if recovered { "connection.recovered" } else { "connection.refreshed" };
        insert_event(
            &txn,
            self.tenant_id,
            row,
            event,
            serde_json::json!({"expires_at": tokens.expires_at, "scopes": scopes}),
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }

    /// Records a failed attempt if the row is still at `read_version`; returns whether it did.
    /// `now` is the database time: it decides whether the access token has expired.
    pub async fn refresh_failed(
        &self,
        row: &RefreshRow,
        failure: &RefreshFailure,
        now: DateTime<Utc>,
    ) -> Result<bool, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let mut update = self
            .update::<connections::Entity>()
            .col_expr(connections::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(connections::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(connections::Column::UpdatedAt, Expr::value(now))
            .col_expr(connections::Column::Version, Expr::col(connections::Column::Version).add(1))
            .filter(connections::Column::Id.eq(row.id))
            .filter(connections::Column::Version.eq(row.version))
            .filter(connections::Column::Status.is_in(["connected", "expired"]));
        let (event, error) = match failure {
            RefreshFailure::Transient { retry_at, message } => {
                let expired = row.tokens.as_ref().and_then(|t| t.expires_at).is_some_and(|e| e <= now);
                let error =
                    LastError { retry_at: Some(*retry_at), ..LastError::new("refresh_failed", message.clone(), now) };
                update = update
                    .col_expr(connections::Column::NextRefreshAt, Expr::value(*retry_at))
                    .col_expr(
                        connections::Column::RefreshFailures,
                        Expr::col(connections::Column::RefreshFailures).add(1),
                    )
                    .col_expr(
                        connections::Column::LastError,
                        Expr::value(serde_json::to_string(&error).map_err(json_err("connection error"))?),
                    );
                if expired {
                    update = update.col_expr(connections::Column::Status, Expr::value("expired"));
                }
                // One event when a grant starts failing, not one per retry.
                ((row.refresh_failures == 0).then_some("connection.refresh_failed"), error)
            }
            RefreshFailure::Reauth { message } => {
                let error = LastError::new("reauth_required", message.clone(), now);
                update = update
                    .col_expr(connections::Column::Status, Expr::value(ConnectionStatus::NeedsReauth.as_str()))
                    .col_expr(connections::Column::NextRefreshAt, Expr::value(Option::<DateTime<Utc>>::None))
                    .col_expr(
                        connections::Column::LastError,
                        Expr::value(serde_json::to_string(&error).map_err(json_err("connection error"))?),
                    );
                (Some("connection.reauth_required"), error)
            }
        };
        let res = update.exec(&txn).await.map_err(map_err)?;
        if res.rows_affected != 1 {
            return Ok(false);
        }
        if let Some(event) = event {
            let data = serde_json::json!({"error": error, "finding": error.finding()});
            insert_event(&txn, self.tenant_id, row, event, data).await?;
        }
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }
}

async fn insert_event(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    row: &RefreshRow,
    event: &str,
    extra: serde_json::Value,
) -> Result<(), DomainError> {
    super::events::insert_connection_event(db, tenant, row.id, &row.key, event, extra).await
}

/// A connected grant to import (see [`TenantStore::import_grants`]).
#[derive(Clone, Debug)]
pub struct ImportedGrant {
    pub key: GrantKey,
    pub tokens: TokenSet,
    pub issuer: String,
    pub token_endpoint: String,
    pub resource: String,
    pub scopes: Vec<String>,
    /// When it is first due for refresh (default: the usual schedule).
    pub next_refresh_at: Option<DateTime<Utc>>,
}

impl TenantStore<'_> {
    /// Imports connected grants in bulk, 500 rows a statement: moving grants from another system,
    /// and load tests. Token sets are sealed exactly as the consent callback seals them. Fails on
    /// a grant that already exists.
    pub async fn import_grants(&self, grants: &[ImportedGrant]) -> Result<(), DomainError> {
        let now = crate::clock::now();
        for chunk in grants.chunks(500) {
            let mut rows = Vec::with_capacity(chunk.len());
            for g in chunk {
                let plain = serde_json::to_vec(&g.tokens).map_err(json_err("token set"))?;
                let sealed = self
                    .store
                    .envelope
                    .seal(&self.token_ctx(&g.key), &plain)
                    .map_err(|e| DomainError::internal_from("sealing a token set failed", e))?;
                rows.push(connections::ActiveModel {
                    id: Set(uuid::Uuid::now_v7()),
                    tenant_id: Set(self.tenant_id.0),
                    user_id: Set(g.key.user_id.clone()),
                    agent_id: Set(g.key.agent_id.0),
                    mcp_server_id: Set(g.key.mcp_server_id.0),
                    status: Set("connected".into()),
                    issuer: Set(Some(g.issuer.clone())),
                    token_endpoint: Set(Some(g.token_endpoint.clone())),
                    resource: Set(Some(g.resource.clone())),
                    scopes: Set(serde_json::to_string(&g.scopes).map_err(json_err("scopes"))?),
                    token_set: Set(Some(sealed)),
                    expires_at: Set(g.tokens.expires_at),
                    connected_at: Set(Some(now)),
                    last_error: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    version: Set(1),
                    next_refresh_at: Set(g.next_refresh_at.or_else(|| next_refresh_at(&g.tokens, now))),
                    lease_owner: Set(None),
                    lease_until: Set(None),
                    refresh_failures: Set(0),
                });
            }
            let (_write, txn) = self.store.begin_write().await?;
            connections::Entity::insert_many(rows).exec(&txn).await.map_err(map_err)?;
            txn.commit().await.map_err(map_err)?;
        }
        Ok(())
    }
}
