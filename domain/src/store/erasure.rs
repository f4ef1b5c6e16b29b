//! Deleting a tenant, or one user's data, without leaving live tokens at the providers.
//!
//! Both start the same way as a disconnect: in one transaction every grant concerned becomes
//! unusable and its tokens move into a revocation job (which needs nothing from the rows about to
//! go). A user's grants, flows and issuance records are then deleted in that same transaction.
//! A tenant cannot vanish at once — its revocation jobs belong to it — so it is deleted in two
//! steps: its keys go and `deleted_at` is set (no credential of the tenant works any more), and a
//! `purge_tenant` job deletes the row, with everything of the tenant, once the revocations have
//! run (done or dead-lettered), and the webhook deliveries of their events.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::entities::{api_keys, auth_flows, connections, issuances, jobs, tenant_signing_keys, tenants};
use super::{AdminStore, QueueStore, TenantStore, map_err};
use crate::job::{Job, PURGE_TENANT};
use crate::tenant::Actor;
use crate::{DomainError, TenantId};

/// What a tenant deletion did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantDeletion {
    pub deleted_at: chrono::DateTime<chrono::Utc>,
    /// Grants revoked now (their tokens are being revoked at the providers).
    pub grants_revoked: usize,
}

/// Where a tenant's purge stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeStep {
    /// The tenant and all its data are gone.
    Purged,
    /// Revocations (or deliveries of their events to the tenant's webhook) are still running, or a
    /// grant appeared meanwhile and was revoked: later.
    Waiting { jobs: u64 },
    /// The tenant is not being deleted (a stale job): nothing was done.
    NotDeleting,
}

impl AdminStore<'_> {
    /// Starts deleting a tenant: revokes every grant (revocation jobs queued), deletes its API keys
    /// and ticket keys, marks it deleted and queues the purge. Again on a tenant being deleted:
    /// nothing more happens, and the same answer comes back.
    pub async fn delete_tenant(&self, actor: &Actor, id: TenantId) -> Result<TenantDeletion, DomainError> {
        let (_write, txn) = self.begin_write().await?;
        let row = tenants::Entity::find_by_id(id.0)
            .one(&txn)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::not_found("tenant", id))?;
        if let Some(deleted_at) = row.deleted_at {
            // A purge that gave up (dead-lettered after a day of waiting) is queued again.
            let queued = jobs::Entity::find()
                .filter(jobs::Column::TenantId.eq(id.0))
                .filter(jobs::Column::Kind.eq(PURGE_TENANT))
                .filter(jobs::Column::Status.eq("queued"))
                .count(&txn)
                .await
                .map_err(map_err)?;
            if queued == 0 {
                super::jobs::enqueue(&txn, id, &Job::PurgeTenant, 30).await?;
                txn.commit().await.map_err(map_err)?;
            }
            return Ok(TenantDeletion { deleted_at, grants_revoked: 0 });
        }
        let grants_revoked = self.tenant(id).revoke_all(&txn, None, None, None, actor).await?;
        api_keys::Entity::delete_many()
            .filter(api_keys::Column::TenantId.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        tenant_signing_keys::Entity::delete_many()
            .filter(tenant_signing_keys::Column::TenantId.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        auth_flows::Entity::delete_many()
            .filter(auth_flows::Column::TenantId.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        let deleted_at = crate::clock::now();
        tenants::Entity::update_many()
            .col_expr(tenants::Column::DeletedAt, Expr::value(Some(deleted_at)))
            .filter(tenants::Column::Id.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        // Up to about a day of retries (hourly after the first hour): revocations retry for less.
        super::jobs::enqueue(&txn, id, &Job::PurgeTenant, 30).await?;
        // A platform entry (no tenant): it outlives the tenant's own audit trail.
        audit::record(
            &txn,
            AuditEntry {
                tenant: None,
                actor,
                action: "tenant.deleted",
                target_type: "tenant",
                target_id: Some(id.to_string()),
                data: json!({"slug": row.slug, "grants_revoked": grants_revoked}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        Ok(TenantDeletion { deleted_at, grants_revoked })
    }
}

impl QueueStore<'_> {
    /// The second step of a tenant deletion (the worker's `purge_tenant` job): once no revocation
    /// job of the tenant is left to run, deletes the tenant row and, by cascade, all its data.
    pub async fn purge_tenant(&self, id: TenantId) -> Result<PurgeStep, DomainError> {
        let (_write, txn) = self.begin_write().await?;
        let Some(row) = tenants::Entity::find_by_id(id.0).one(&txn).await.map_err(map_err)? else {
            return Ok(PurgeStep::Purged);
        };
        if row.deleted_at.is_none() {
            return Ok(PurgeStep::NotDeleting);
        }
        // A grant completed on another instance in the seconds its key cache still knew the
        // tenant: revoked like the others, and waited for.
        let late = self.tenant(id).revoke_all(&txn, None, None, None, &Actor::System).await?;
        let pending = jobs::Entity::find()
            .filter(jobs::Column::TenantId.eq(id.0))
            .filter(jobs::Column::Kind.is_in([crate::job::REVOKE_TOKENS, crate::job::DELIVER_EVENT]))
            .filter(jobs::Column::Status.eq("queued"))
            .count(&txn)
            .await
            .map_err(map_err)?;
        if late > 0 || pending > 0 {
            txn.commit().await.map_err(map_err)?;
            return Ok(PurgeStep::Waiting { jobs: pending + late as u64 });
        }
        // Health counters hang on no foreign key (they are telemetry): deleted by hand.
        super::entities::health_minutes::Entity::delete_many()
            .filter(super::entities::health_minutes::Column::TenantId.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        tenants::Entity::delete_by_id(id.0).exec(&txn).await.map_err(map_err)?;
        audit::record(
            &txn,
            AuditEntry {
                tenant: None,
                actor: &Actor::System,
                action: "tenant.purged",
                target_type: "tenant",
                target_id: Some(id.to_string()),
                data: json!({"slug": row.slug}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        Ok(PurgeStep::Purged)
    }
}

/// What deleting a user's data did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDeletion {
    /// Grants that held tokens or were pending, now revoked (tokens revoked at the providers by jobs).
    pub grants_revoked: usize,
    /// Connection rows deleted (every agent, every server).
    pub connections_deleted: u64,
}

impl TenantStore<'_> {
    /// Deletes one end user's grants and what hangs on them: revokes the grants (tokens revoked at
    /// the providers by jobs that carry them), then deletes their connections, pending consent
    /// flows and issuance records, in one transaction. Events already written (the outbox, whose
    /// deliveries may be under way) and audit entries keep naming the user id, the tenant's own
    /// identifier; one more audit entry records the deletion.
    pub async fn delete_user_data(&self, actor: &Actor, user_id: &str) -> Result<UserDeletion, DomainError> {
        let (write, txn) = self.store.begin_write().await?;
        let grants_revoked = self.revoke_all(&txn, None, None, Some(user_id), actor).await?;
        let connections_deleted = self
            .delete::<connections::Entity>()
            .filter(connections::Column::UserId.eq(user_id))
            .exec(&txn)
            .await
            .map_err(map_err)?
            .rows_affected;
        self.delete::<auth_flows::Entity>()
            .filter(auth_flows::Column::UserId.eq(user_id))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        self.delete::<issuances::Entity>()
            .filter(issuances::Column::UserId.eq(user_id))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(self.tenant_id),
                actor,
                action: "user.data_deleted",
                target_type: "user",
                target_id: Some(user_id.to_owned()),
                data: json!({"grants_revoked": grants_revoked, "connections_deleted": connections_deleted}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        drop(write);
        // The tokens the gateway's own authorization server issued to the user's MCP clients:
        // revoked (their access tokens at once), then forgotten.
        self.delete_gateway_families(user_id).await?;
        Ok(UserDeletion { grants_revoked, connections_deleted })
    }
}
