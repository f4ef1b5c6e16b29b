//! Test helpers that set what the store's public API does not let a caller set — when a grant
//! or a server is next due — so a test makes work due instead of sleeping until it is. Behind the
//! `test-support` feature: production code cannot call them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};

use super::entities::{connections, mcp_servers};
use super::{Store, map_err};
use crate::{DomainError, TenantId};

/// Makes every grant of `tenant` due for refresh at `when`.
pub async fn make_refreshes_due(store: &Store, tenant: TenantId, when: DateTime<Utc>) -> Result<(), DomainError> {
    connections::Entity::update_many()
        .col_expr(connections::Column::NextRefreshAt, Expr::value(when))
        .filter(connections::Column::TenantId.eq(tenant.0))
        .exec(&store.db)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Makes every server of `tenant` due for its rediscovery at `when`.
pub async fn make_rediscoveries_due(store: &Store, tenant: TenantId, when: DateTime<Utc>) -> Result<(), DomainError> {
    mcp_servers::Entity::update_many()
        .col_expr(mcp_servers::Column::RediscoverAt, Expr::value(Some(when)))
        .filter(mcp_servers::Column::TenantId.eq(tenant.0))
        .exec(&store.db)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// When the first grant of `tenant` is next due for refresh.
pub async fn next_refresh_at(store: &Store, tenant: TenantId) -> Result<Option<DateTime<Utc>>, DomainError> {
    let row = connections::Entity::find()
        .filter(connections::Column::TenantId.eq(tenant.0))
        .one(&store.db)
        .await
        .map_err(map_err)?;
    Ok(row.and_then(|r| r.next_refresh_at))
}

/// Replaces a grant's stored access token, keeping its refresh token and expiry: what a token
/// its server stopped accepting (a key rotation, a revocation at the provider) looks like.
pub async fn replace_access_token(
    store: &Store,
    key: &crate::connection::GrantKey,
    access_token: &str,
) -> Result<(), DomainError> {
    let mut tokens = store
        .tenant(key.tenant_id)
        .token_set(key)
        .await?
        .ok_or_else(|| DomainError::not_found("token set", &key.user_id))?;
    tokens.access_token = crate::crypto::Secret::new(access_token.to_owned());
    let ctx = crate::crypto::SealContext {
        tenant: key.tenant_id,
        table: "connections",
        column: "token_set",
        row: super::connections::grant_row(key),
    };
    let plain = serde_json::to_vec(&tokens).map_err(|e| DomainError::internal_from("token set", e))?;
    let sealed = store.envelope.seal(&ctx, &plain).map_err(|e| DomainError::internal_from("sealing", e))?;
    connections::Entity::update_many()
        .col_expr(connections::Column::TokenSet, Expr::value(sealed))
        .filter(connections::Column::TenantId.eq(key.tenant_id.0))
        .filter(connections::Column::UserId.eq(key.user_id.as_str()))
        .filter(connections::Column::AgentId.eq(key.agent_id.0))
        .filter(connections::Column::McpServerId.eq(key.mcp_server_id.0))
        .exec(&store.db)
        .await
        .map_err(map_err)?;
    Ok(())
}
