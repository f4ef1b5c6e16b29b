//! Background rediscovery: every server is probed again once a day (`rediscover_at`), so that a
//! moved authorization server, a new token endpoint or a server that stopped answering shows in
//! its `discovery_result` without anyone asking — and grants pinned to an authorization server
//! the server no longer names are sent back to consent instead of being refreshed there.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{connections, mcp_servers, tenants};
use super::{QueueStore, RefreshFailure, TenantStore, map_err};
use crate::connection::ConnectionStatus;
use crate::{DomainError, McpServerId, TenantId};

/// How often a server is rediscovered in the background.
pub const REDISCOVER_EVERY: TimeDelta = TimeDelta::hours(24);

impl QueueStore<'_> {
    /// Queues a rediscovery job for up to `limit` servers whose rediscovery is due, moving each one's
    /// `rediscover_at` a day ahead in the same transaction (so no other worker queues it too).
    /// Cross-tenant: this is the worker's schedule. Returns how many were queued.
    pub async fn enqueue_due_rediscoveries(&self, now: DateTime<Utc>, limit: u64) -> Result<usize, DomainError> {
        let due = mcp_servers::Entity::find()
            .select_only()
            .columns([mcp_servers::Column::Id, mcp_servers::Column::TenantId, mcp_servers::Column::RediscoverAt])
            // Not for a tenant being deleted: its purge is coming.
            .filter(
                mcp_servers::Column::TenantId.not_in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(tenants::Column::Id)
                        .from(tenants::Entity)
                        .and_where(tenants::Column::DeletedAt.is_not_null())
                        .to_owned(),
                ),
            )
            // Never scheduled (servers from before this column): due now.
            .filter(
                Condition::any()
                    .add(mcp_servers::Column::RediscoverAt.lte(now))
                    .add(mcp_servers::Column::RediscoverAt.is_null()),
            )
            .order_by_asc(mcp_servers::Column::RediscoverAt)
            .limit(limit)
            .into_tuple::<(uuid::Uuid, uuid::Uuid, Option<DateTime<Utc>>)>()
            .all(&self.db)
            .await
            .map_err(map_err)?;
        let mut queued = 0;
        for (id, tenant, at) in due {
            let (_write, txn) = self.begin_write().await?;
            let moved = mcp_servers::Entity::update_many()
                .col_expr(mcp_servers::Column::RediscoverAt, Expr::value(Some(now + REDISCOVER_EVERY)))
                .filter(mcp_servers::Column::Id.eq(id))
                .filter(match at {
                    Some(at) => mcp_servers::Column::RediscoverAt.eq(at),
                    None => mcp_servers::Column::RediscoverAt.is_null(),
                })
                .exec(&txn)
                .await
                .map_err(map_err)?;
            if moved.rows_affected == 1 {
                super::jobs::enqueue(
                    &txn,
                    TenantId(tenant),
                    &crate::job::Job::RediscoverServer { mcp_server_id: id.into() },
                    3,
                )
                .await?;
                queued += 1;
            }
            txn.commit().await.map_err(map_err)?;
        }
        Ok(queued)
    }
}

impl TenantStore<'_> {
    /// After a rediscovery found that `server` now names the authorization server `issuer`: every
    /// live grant of the server pinned to another issuer goes to `needs_reauth` (one
    /// `connection.reauth_required` event each). Its refresh token is never sent to the new
    /// issuer, and no longer to the old one. Returns how many grants it ended.
    pub async fn reauth_grants_of_other_issuers(
        &self,
        server: McpServerId,
        issuer: &str,
    ) -> Result<usize, DomainError> {
        let mut ended = 0;
        // A grant whose row changed under us (a refresh landed) is read again on the next pass.
        for _ in 0..3 {
            let ids: Vec<uuid::Uuid> = self
                .find::<connections::Entity>()
                .select_only()
                .column(connections::Column::Id)
                .filter(connections::Column::McpServerId.eq(server.0))
                .filter(connections::Column::Issuer.ne(issuer))
                .filter(
                    connections::Column::Status
                        .is_in([ConnectionStatus::Connected.as_str(), ConnectionStatus::Expired.as_str()]),
                )
                .into_tuple()
                .all(&self.store.db)
                .await
                .map_err(map_err)?;
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let row = self.refresh_row(id).await?;
                let message = format!(
                    "the server now uses the authorization server {issuer}; the user must connect again to get a grant from it"
                );
                if self.refresh_failed(&row, &RefreshFailure::Reauth { message }, crate::clock::now()).await? {
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }
}
