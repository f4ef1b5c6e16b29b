//! The audit trail: written in the same transaction as the change it records.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;

use super::entities::audit_events;
use super::map_err;
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
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map_err(map_err)?;
    Ok(())
}
