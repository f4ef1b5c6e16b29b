//! The connection-event outbox: every change of a grant writes its event in the transaction of
//! the change, and — when the tenant has a webhook — the delivery job with it, so an event that
//! exists is delivered at least once. The runtime event stream reads the same table.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entities::connection_events;
use super::{TenantStore, json_err, map_err};
use crate::connection::GrantKey;
use crate::{DomainError, TenantId};

impl TenantStore<'_> {
    /// Writes a connection event to the outbox on its own (for failures that change no row).
    pub async fn record_connection_event(
        &self,
        connection_id: uuid::Uuid,
        key: &GrantKey,
        event: &str,
        data: serde_json::Value,
    ) -> Result<(), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        insert_connection_event(&txn, self.tenant_id, connection_id, key, event, data).await?;
        txn.commit().await.map_err(map_err)
    }

    /// A connection's events, oldest first.
    pub async fn connection_events(
        &self,
        connection_id: uuid::Uuid,
    ) -> Result<Vec<(uuid::Uuid, String, serde_json::Value, DateTime<Utc>)>, DomainError> {
        let rows = self
            .find::<connection_events::Entity>()
            .filter(connection_events::Column::ConnectionId.eq(connection_id))
            .order_by_asc(connection_events::Column::Id)
            .all(&self.store.db)
            .await
            .map_err(map_err)?;
        rows.into_iter()
            .map(|r| Ok((r.id, r.event_type, serde_json::from_str(&r.data).map_err(json_err("event"))?, r.created_at)))
            .collect()
    }
}

/// Writes a connection event to the outbox, in `db` — the transaction of the change it reports.
pub(super) async fn insert_connection_event(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    connection_id: uuid::Uuid,
    key: &GrantKey,
    event: &str,
    extra: serde_json::Value,
) -> Result<(), DomainError> {
    let mut data = serde_json::json!({"connection_id": connection_id, "user_id": key.user_id,
        "agent_id": key.agent_id, "mcp_server_id": key.mcp_server_id});
    if let (Some(obj), Some(more)) = (data.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    let id = uuid::Uuid::now_v7();
    connection_events::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.0),
        connection_id: Set(connection_id),
        event_type: Set(event.to_owned()),
        data: Set(data.to_string()),
        created_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await
    .map_err(map_err)?;
    // With a webhook set, its delivery is a job of the same transaction: an event that exists will
    // be delivered, at least once, with retries. (Without one there is nobody to deliver to.)
    let hooked =
        super::entities::tenant_webhooks::Entity::find_by_id(tenant.0).one(db).await.map_err(map_err)?.is_some();
    if hooked {
        super::jobs::enqueue(db, tenant, &crate::job::Job::DeliverEvent { event_id: id }, 8).await?;
    }
    Ok(())
}
