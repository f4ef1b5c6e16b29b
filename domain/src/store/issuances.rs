//! The issuance trail: every access token handed out, refused or revoked, per grant (never the
//! token itself).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};

use super::connections::ConnectionFilter;
use super::{TenantStore, json_err, map_err};
use crate::DomainError;
use crate::connection::GrantKey;

impl TenantStore<'_> {
    /// Records an issuance (`issued`, `refused`, `revoked`).
    pub async fn record_issuance(
        &self,
        key: &GrantKey,
        outcome: &str,
        reason: Option<String>,
        scopes: &[String],
        expires_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<(), DomainError> {
        insert_issuance(&self.store.db, key, outcome, reason, scopes, expires_at).await
    }

    /// Issuances, newest first, filtered by server, agent and user.
    pub async fn list_issuances(
        &self,
        page: crate::page::PageRequest,
        f: &ConnectionFilter,
    ) -> Result<crate::page::Page<crate::connection::Issuance>, DomainError> {
        use sea_orm::{QueryOrder, QuerySelect};

        use super::entities::issuances::{Column as C, Entity};
        let mut q = self.find::<Entity>().order_by_desc(C::Id).limit(page.limit + 1);
        if let Some(before) = page.after {
            q = q.filter(C::Id.lt(before));
        }
        if let Some(u) = &f.user_id {
            q = q.filter(C::UserId.eq(u.as_str()));
        }
        if let Some(a) = f.agent_id {
            q = q.filter(C::AgentId.eq(a.0));
        }
        if let Some(s) = f.mcp_server_id {
            q = q.filter(C::McpServerId.eq(s.0));
        }
        let rows = q.all(&self.store.db).await.map_err(map_err)?;
        let items = rows
            .into_iter()
            .map(|m| {
                Ok(crate::connection::Issuance {
                    id: m.id,
                    key: GrantKey {
                        tenant_id: self.tenant_id,
                        user_id: m.user_id,
                        agent_id: m.agent_id.into(),
                        mcp_server_id: m.mcp_server_id.into(),
                    },
                    outcome: m.outcome,
                    reason: m.reason,
                    scopes: serde_json::from_str(&m.scopes).map_err(json_err("scopes"))?,
                    expires_at: m.expires_at,
                    created_at: m.created_at,
                })
            })
            .collect::<Result<Vec<_>, DomainError>>()?;
        Ok(crate::page::Page::from_overfetch(items, page.limit, |i| i.id))
    }
}

/// Writes an issuance record in `db` (a transaction, when it belongs to a change).
pub(super) async fn insert_issuance(
    db: &impl sea_orm::ConnectionTrait,
    key: &GrantKey,
    outcome: &str,
    reason: Option<String>,
    scopes: &[String],
    expires_at: Option<chrono::DateTime<Utc>>,
) -> Result<(), DomainError> {
    super::entities::issuances::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(key.tenant_id.0),
        user_id: Set(key.user_id.clone()),
        agent_id: Set(key.agent_id.0),
        mcp_server_id: Set(key.mcp_server_id.0),
        outcome: Set(outcome.to_owned()),
        reason: Set(reason),
        scopes: Set(serde_json::to_string(scopes).map_err(json_err("scopes"))?),
        expires_at: Set(expires_at),
        created_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await
    .map_err(map_err)?;
    Ok(())
}
