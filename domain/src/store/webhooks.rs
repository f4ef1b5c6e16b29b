//! A tenant's webhook (URL and sealed signing secret), and what a delivery needs: the event.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};

use super::entities::{connection_events, tenant_webhooks};
use super::{TenantStore, json_err, map_err};
use crate::DomainError;
use crate::crypto::{SealContext, Secret};

/// A tenant's webhook. `Debug` hides the secret.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    pub secret: Secret,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish_non_exhaustive()
    }
}

/// One stored connection event.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub id: uuid::Uuid,
    pub connection_id: uuid::Uuid,
    pub event_type: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl TenantStore<'_> {
    fn webhook_ctx(&self) -> SealContext<'static> {
        SealContext { tenant: self.tenant_id, table: "tenant_webhooks", column: "secret", row: self.tenant_id.0 }
    }

    pub async fn webhook(&self) -> Result<Option<Webhook>, DomainError> {
        let Some(row) = self
            .find_by_id::<tenant_webhooks::Entity, _>(self.tenant_id.0)
            .one(&self.store.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let plain = self
            .store
            .envelope
            .open(&self.webhook_ctx(), &row.secret)
            .map_err(|e| DomainError::internal_from("webhook secret", e))?;
        let secret = String::from_utf8(plain).map_err(|_| DomainError::internal("webhook secret is not text"))?;
        Ok(Some(Webhook { url: row.url, secret: Secret::new(secret), updated_at: row.updated_at }))
    }

    /// Sets the webhook URL. A new webhook gets a new secret; an existing one keeps its secret
    /// unless `rotate`. Returns the webhook and whether its secret is new (to be shown once).
    pub async fn put_webhook(&self, url: &str, rotate: bool) -> Result<(Webhook, bool), DomainError> {
        let now = crate::clock::now();
        let current = self.webhook().await?;
        let (secret, fresh) = match current {
            Some(w) if !rotate => (w.secret.expose().to_owned(), false),
            _ => (
                crate::webhook::generate_secret()
                    .map_err(|e| DomainError::internal_from("a webhook secret could not be made", e))?,
                true,
            ),
        };
        let sealed = self
            .store
            .envelope
            .seal(&self.webhook_ctx(), secret.as_bytes())
            .map_err(|e| DomainError::internal_from("a webhook secret could not be made", e))?;
        let (_write, txn) = self.store.begin_write().await?;
        match self.find_by_id::<tenant_webhooks::Entity, _>(self.tenant_id.0).one(&txn).await.map_err(map_err)? {
            Some(row) => {
                let mut active: tenant_webhooks::ActiveModel = row.into();
                active.url = Set(url.to_owned());
                active.secret = Set(sealed);
                active.updated_at = Set(now);
                active.update(&txn).await.map_err(map_err)?;
            }
            None => {
                tenant_webhooks::ActiveModel {
                    tenant_id: Set(self.tenant_id.0),
                    url: Set(url.to_owned()),
                    secret: Set(sealed),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await
                .map_err(map_err)?;
            }
        }
        txn.commit().await.map_err(map_err)?;
        Ok((Webhook { url: url.to_owned(), secret: Secret::new(secret), updated_at: now }, fresh))
    }

    /// Removes the webhook; `false` when there was none.
    pub async fn delete_webhook(&self) -> Result<bool, DomainError> {
        let res = self.delete::<tenant_webhooks::Entity>().exec(&self.store.db).await.map_err(map_err)?;
        Ok(res.rows_affected == 1)
    }

    /// One event of this tenant.
    pub async fn event(&self, id: uuid::Uuid) -> Result<Option<StoredEvent>, DomainError> {
        let Some(r) = self.find_by_id::<connection_events::Entity, _>(id).one(&self.store.db).await.map_err(map_err)?
        else {
            return Ok(None);
        };
        Ok(Some(StoredEvent {
            id: r.id,
            connection_id: r.connection_id,
            event_type: r.event_type,
            data: serde_json::from_str(&r.data).map_err(json_err("event"))?,
            created_at: r.created_at,
        }))
    }

    /// This tenant's events after `after` (UUIDv7 order), oldest first, at most `limit`.
    pub async fn events_after(&self, after: Option<uuid::Uuid>, limit: u64) -> Result<Vec<StoredEvent>, DomainError> {
        use sea_orm::{QueryOrder, QuerySelect};
        let mut q = self.find::<connection_events::Entity>().order_by_asc(connection_events::Column::Id).limit(limit);
        if let Some(a) = after {
            q = q.filter(connection_events::Column::Id.gt(a));
        }
        q.all(&self.store.db)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(|r| {
                Ok(StoredEvent {
                    id: r.id,
                    connection_id: r.connection_id,
                    event_type: r.event_type,
                    data: serde_json::from_str(&r.data).map_err(json_err("event"))?,
                    created_at: r.created_at,
                })
            })
            .collect()
    }
}
