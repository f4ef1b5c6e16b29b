//! The audit trail: written in the same transaction as the change it records.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::Value;

use super::entities::audit_events;
use super::{TenantStore, json_err, map_err};
use crate::audit::{AuditEvent, AuditFilter};
use crate::page::{Page, PageRequest};
use crate::tenant::Actor;
use crate::{AuditEventId, DomainError, TenantId};

/// What happened, to what.
pub(crate) struct AuditEntry<'a> {
    pub tenant: Option<TenantId>,
    pub actor: &'a Actor,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<String>,
    /// Never a secret: names, slugs, types.
    pub data: Value,
}

pub(crate) async fn record(db: &impl ConnectionTrait, entry: AuditEntry<'_>) -> Result<(), DomainError> {
    audit_events::ActiveModel {
        id: Set(AuditEventId::new().0),
        tenant_id: Set(entry.tenant.map(|t| t.0)),
        actor: Set(entry.actor.label()),
        action: Set(entry.action.to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id),
        data: Set(entry.data.to_string()),
        created_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await
    .map_err(map_err)?;
    Ok(())
}

impl TenantStore<'_> {
    /// Records an event on its own (for outcomes that are not a row change, such as a denied consent).
    pub async fn record_event(
        &self,
        actor: &Actor,
        action: &'static str,
        target_type: &'static str,
        target_id: Option<String>,
        data: Value,
    ) -> Result<(), DomainError> {
        record(&self.store.db, AuditEntry { tenant: Some(self.tenant_id), actor, action, target_type, target_id, data })
            .await
    }

    /// The tenant's audit events, newest first; the cursor is the id of the last event returned.
    pub async fn list_audit_events(
        &self,
        page: PageRequest,
        filter: &AuditFilter,
    ) -> Result<Page<AuditEvent>, DomainError> {
        use audit_events::Column as C;
        let mut q = self.find::<audit_events::Entity>().order_by_desc(C::Id).limit(page.limit + 1);
        if let Some(before) = page.after {
            q = q.filter(C::Id.lt(before));
        }
        match filter.action.as_deref() {
            Some(prefix) if prefix.ends_with('.') => q = q.filter(C::Action.starts_with(prefix)),
            Some(action) => q = q.filter(C::Action.eq(action)),
            None => {}
        }
        if let Some(target) = &filter.target_id {
            q = q.filter(C::TargetId.eq(target.as_str()));
        }
        let rows = q.all(&self.store.db).await.map_err(map_err)?;
        let events = rows
            .into_iter()
            .map(|m| {
                Ok(AuditEvent {
                    id: m.id.into(),
                    actor: m.actor,
                    action: m.action,
                    target_type: m.target_type,
                    target_id: m.target_id,
                    data: serde_json::value::RawValue::from_string(m.data).map_err(json_err("audit data"))?,
                    created_at: m.created_at,
                })
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
        Ok(Page::from_overfetch(events, page.limit, |e| e.id.0))
    }
}
