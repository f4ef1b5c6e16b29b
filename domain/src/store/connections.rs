//! Connections and authorization-code flows. Token sets and PKCE verifiers are sealed; the AAD of
//! a token set names the whole grant (tenant, user, agent, server), so a token set copied to
//! another grant does not open.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};

use super::entities::{auth_flows, connections};
use super::{TenantStore, json_err, map_err};
use crate::connection::{AuthFlow, Connection, ConnectionStatus, GrantKey, LastError, TokenSet, Transition};
use crate::crypto::{SealContext, Secret};
use crate::{AgentId, DomainError, McpServerId};

pub(super) fn grant_row(key: &GrantKey) -> uuid::Uuid {
    // A stable row id for the token-set AAD: derived from the full grant key.
    let digest = crate::crypto::sha256(
        format!("{}\n{}\n{}\n{}", key.tenant_id, key.user_id, key.agent_id, key.mcp_server_id).as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(bytes)
}

impl TenantStore<'_> {
    /// The one row of a grant: every lookup is keyed by the full (tenant, user, agent, server).
    pub(super) fn grant_filter(&self, key: &GrantKey) -> sea_orm::Condition {
        sea_orm::Condition::all()
            .add(connections::Column::TenantId.eq(key.tenant_id.0))
            .add(connections::Column::UserId.eq(key.user_id.as_str()))
            .add(connections::Column::AgentId.eq(key.agent_id.0))
            .add(connections::Column::McpServerId.eq(key.mcp_server_id.0))
    }

    pub(super) fn connection_from_row(&self, m: connections::Model) -> Result<Connection, DomainError> {
        Ok(Connection {
            id: m.id,
            key: GrantKey {
                tenant_id: self.tenant_id,
                user_id: m.user_id,
                agent_id: m.agent_id.into(),
                mcp_server_id: m.mcp_server_id.into(),
            },
            status: m.status.parse().map_err(|e| DomainError::internal_from(format!("connection {}", m.id), e))?,
            issuer: m.issuer,
            token_endpoint: m.token_endpoint,
            resource: m.resource,
            scopes: serde_json::from_str(&m.scopes).map_err(json_err("connection scopes"))?,
            expires_at: m.expires_at,
            connected_at: m.connected_at,
            last_error: m
                .last_error
                .as_deref()
                .map(|t| LastError::from_stored(t, m.updated_at))
                .transpose()
                .map_err(json_err("connection error"))?,
        })
    }

    /// This user's connections through `agent`, one per server at most.
    pub async fn user_connections(&self, user_id: &str, agent: AgentId) -> Result<Vec<Connection>, DomainError> {
        let rows = self
            .find::<connections::Entity>()
            .filter(connections::Column::UserId.eq(user_id))
            .filter(connections::Column::AgentId.eq(agent.0))
            .all(&self.store.db)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(|m| self.connection_from_row(m)).collect()
    }

    /// Records a flow; `state_hash` is SHA-256 of the `state` sent to the browser.
    pub async fn create_flow(&self, flow: &AuthFlow, state_hash: &str) -> Result<(), DomainError> {
        let id = uuid::Uuid::now_v7();
        let ctx = SealContext { tenant: self.tenant_id, table: "auth_flows", column: "verifier", row: id };
        let verifier = self
            .store
            .envelope
            .seal(&ctx, flow.verifier.expose().as_bytes())
            .map_err(|e| DomainError::internal_from("sealing a token set failed", e))?;
        auth_flows::ActiveModel {
            id: Set(id),
            tenant_id: Set(self.tenant_id.0),
            user_id: Set(flow.key.user_id.clone()),
            agent_id: Set(flow.key.agent_id.0),
            mcp_server_id: Set(flow.key.mcp_server_id.0),
            state_hash: Set(state_hash.to_owned()),
            verifier: Set(verifier),
            issuer: Set(flow.issuer.clone()),
            token_endpoint: Set(flow.token_endpoint.clone()),
            resource: Set(flow.resource.clone()),
            redirect_uri: Set(flow.redirect_uri.clone()),
            scopes: Set(serde_json::to_string(&flow.scopes).map_err(json_err("flow scopes"))?),
            return_url: Set(flow.return_url.clone()),
            expires_at: Set(flow.expires_at),
            used_at: Set(None),
            created_at: Set(crate::clock::now()),
        }
        .insert(&self.store.db)
        .await
        .map_err(map_err)?;
        self.set_status(&flow.key, ConnectionStatus::PendingConsent, None).await
    }

    /// Upserts the grant's status (and last error). A grant that becomes `connected` here (a
    /// server that needs no consent) gets its `connection.connected` event in the same transaction.
    pub async fn set_status(
        &self,
        key: &GrantKey,
        status: ConnectionStatus,
        last_error: Option<LastError>,
    ) -> Result<(), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let (id, was) = self.upsert_status(&txn, key, status, last_error).await?;
        if status == ConnectionStatus::Connected && was != Some(ConnectionStatus::Connected) {
            super::events::insert_connection_event(
                &txn,
                self.tenant_id,
                id,
                key,
                "connection.connected",
                serde_json::json!({}),
            )
            .await?;
        }
        txn.commit().await.map_err(map_err)
    }

    /// [`Self::set_status`] inside `txn`, without events: the row's id and its status before.
    async fn upsert_status(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        key: &GrantKey,
        status: ConnectionStatus,
        last_error: Option<LastError>,
    ) -> Result<(uuid::Uuid, Option<ConnectionStatus>), DomainError> {
        let now = crate::clock::now();
        let existing =
            self.find::<connections::Entity>().filter(self.grant_filter(key)).one(txn).await.map_err(map_err)?;
        let error_text =
            last_error.map(|e| serde_json::to_string(&e)).transpose().map_err(json_err("connection error"))?;
        let parse = |row: &connections::Model| -> Result<ConnectionStatus, DomainError> {
            row.status.parse().map_err(|e| DomainError::internal_from(format!("connection {}", row.id), e))
        };
        match existing {
            Some(row) => {
                let (id, was) = (row.id, parse(&row)?);
                if was.on(status) == Transition::Stay {
                    return Ok((id, Some(was)));
                }
                let mut active: connections::ActiveModel = row.into();
                active.status = Set(status.as_str().to_owned());
                active.last_error = Set(error_text);
                active.updated_at = Set(now);
                active.update(txn).await.map_err(map_err)?;
                Ok((id, Some(was)))
            }
            None => {
                let id = uuid::Uuid::now_v7();
                connections::ActiveModel {
                    id: Set(id),
                    tenant_id: Set(self.tenant_id.0),
                    user_id: Set(key.user_id.clone()),
                    agent_id: Set(key.agent_id.0),
                    mcp_server_id: Set(key.mcp_server_id.0),
                    status: Set(status.as_str().to_owned()),
                    issuer: Set(None),
                    token_endpoint: Set(None),
                    resource: Set(None),
                    scopes: Set("[]".into()),
                    token_set: Set(None),
                    expires_at: Set(None),
                    connected_at: Set(None),
                    last_error: Set(error_text),
                    created_at: Set(now),
                    updated_at: Set(now),
                    version: Set(0),
                    next_refresh_at: Set(None),
                    lease_owner: Set(None),
                    lease_until: Set(None),
                    refresh_failures: Set(0),
                }
                .insert(txn)
                .await
                .map_err(map_err)?;
                Ok((id, None))
            }
        }
    }

    /// Takes a flow by its state hash, once: a second take (a replayed or concurrent callback),
    /// an expired flow or an unknown state all give `None`.
    pub async fn take_flow(&self, state_hash: &str) -> Result<Option<AuthFlow>, DomainError> {
        let now = crate::clock::now();
        let taken = self
            .update::<auth_flows::Entity>()
            .col_expr(auth_flows::Column::UsedAt, Expr::value(now))
            .filter(auth_flows::Column::StateHash.eq(state_hash))
            .filter(auth_flows::Column::UsedAt.is_null())
            .filter(auth_flows::Column::ExpiresAt.gt(now))
            .exec(&self.store.db)
            .await
            .map_err(map_err)?;
        if taken.rows_affected != 1 {
            return Ok(None);
        }
        let Some(m) = self
            .find::<auth_flows::Entity>()
            .filter(auth_flows::Column::StateHash.eq(state_hash))
            .one(&self.store.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let ctx = SealContext { tenant: self.tenant_id, table: "auth_flows", column: "verifier", row: m.id };
        let verifier =
            self.store.envelope.open(&ctx, &m.verifier).map_err(|e| DomainError::internal_from("flow verifier", e))?;
        Ok(Some(AuthFlow {
            key: GrantKey {
                tenant_id: self.tenant_id,
                user_id: m.user_id,
                agent_id: m.agent_id.into(),
                mcp_server_id: McpServerId(m.mcp_server_id),
            },
            verifier: Secret::new(
                String::from_utf8(verifier).map_err(|_| DomainError::internal("verifier is not UTF-8"))?,
            ),
            issuer: m.issuer,
            token_endpoint: m.token_endpoint,
            resource: m.resource,
            redirect_uri: m.redirect_uri,
            scopes: serde_json::from_str(&m.scopes).map_err(json_err("flow scopes"))?,
            return_url: m.return_url,
            expires_at: m.expires_at,
        }))
    }

    /// Stores a token set for the grant and marks it connected, pinned to issuer, token endpoint
    /// and resource. `now` is the database time the first refresh is scheduled from.
    pub async fn save_tokens(
        &self,
        flow: &AuthFlow,
        tokens: &TokenSet,
        granted_scopes: &[String],
        now: chrono::DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let key = &flow.key;
        let ctx =
            SealContext { tenant: self.tenant_id, table: "connections", column: "token_set", row: grant_row(key) };
        let plain = serde_json::to_vec(tokens).map_err(json_err("token set"))?;
        let sealed = self
            .store
            .envelope
            .seal(&ctx, &plain)
            .map_err(|e| DomainError::internal_from("sealing a token set failed", e))?;
        // The grant, its tokens and its `connection.connected` event: one transaction.
        let (_write, txn) = self.store.begin_write().await?;
        let (id, _) = self.upsert_status(&txn, key, ConnectionStatus::Connected, None).await?;
        let stamp = crate::clock::now();
        self.update::<connections::Entity>()
            .col_expr(connections::Column::TokenSet, Expr::value(sealed))
            .col_expr(connections::Column::Issuer, Expr::value(flow.issuer.clone()))
            .col_expr(connections::Column::TokenEndpoint, Expr::value(flow.token_endpoint.clone()))
            .col_expr(connections::Column::Resource, Expr::value(flow.resource.clone()))
            .col_expr(
                connections::Column::Scopes,
                Expr::value(serde_json::to_string(granted_scopes).map_err(json_err("scopes"))?),
            )
            .col_expr(connections::Column::ExpiresAt, Expr::value(tokens.expires_at))
            .col_expr(connections::Column::ConnectedAt, Expr::value(stamp))
            .col_expr(connections::Column::Status, Expr::value("connected"))
            .col_expr(connections::Column::LastError, Expr::value(Option::<String>::None))
            .col_expr(connections::Column::UpdatedAt, Expr::value(stamp))
            // A new token set: scheduled for proactive refresh, and any older writer is fenced.
            .col_expr(connections::Column::NextRefreshAt, Expr::value(crate::connection::next_refresh_at(tokens, now)))
            .col_expr(connections::Column::RefreshFailures, Expr::value(0))
            .col_expr(connections::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(connections::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<Utc>>::None))
            .col_expr(connections::Column::Version, Expr::col(connections::Column::Version).add(1))
            .filter(self.grant_filter(key))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        super::events::insert_connection_event(
            &txn,
            self.tenant_id,
            id,
            key,
            "connection.connected",
            serde_json::json!({"scopes": granted_scopes, "expires_at": tokens.expires_at}),
        )
        .await?;
        txn.commit().await.map_err(map_err)
    }

    /// Opens a token set sealed for `key` (a revocation job's payload).
    pub fn open_token_set(&self, key: &GrantKey, sealed: &[u8]) -> Result<TokenSet, DomainError> {
        let ctx =
            SealContext { tenant: self.tenant_id, table: "connections", column: "token_set", row: grant_row(key) };
        let plain = self.store.envelope.open(&ctx, sealed).map_err(|e| DomainError::internal_from("token set", e))?;
        serde_json::from_slice(&plain).map_err(json_err("token set"))
    }

    /// The grant's token set, for the code that sends it upstream.
    pub async fn token_set(&self, key: &GrantKey) -> Result<Option<TokenSet>, DomainError> {
        let row = self
            .find::<connections::Entity>()
            .filter(self.grant_filter(key))
            .one(&self.store.db)
            .await
            .map_err(map_err)?;
        let Some(sealed) = row.and_then(|r| r.token_set) else { return Ok(None) };
        let ctx =
            SealContext { tenant: self.tenant_id, table: "connections", column: "token_set", row: grant_row(key) };
        let plain = self.store.envelope.open(&ctx, &sealed).map_err(|e| DomainError::internal_from("token set", e))?;
        serde_json::from_slice(&plain).map(Some).map_err(json_err("token set"))
    }
}

/// Filters of the connections list.
#[derive(Clone, Debug, Default)]
pub struct ConnectionFilter {
    pub user_id: Option<String>,
    pub agent_id: Option<AgentId>,
    pub mcp_server_id: Option<McpServerId>,
    pub status: Option<ConnectionStatus>,
}

impl TenantStore<'_> {
    pub async fn list_connections(
        &self,
        page: crate::page::PageRequest,
        f: &ConnectionFilter,
    ) -> Result<crate::page::Page<Connection>, DomainError> {
        use sea_orm::{QueryOrder, QuerySelect};
        let mut q = self.find::<connections::Entity>().order_by_asc(connections::Column::Id).limit(page.limit + 1);
        if let Some(after) = page.after {
            q = q.filter(connections::Column::Id.gt(after));
        }
        if let Some(u) = &f.user_id {
            q = q.filter(connections::Column::UserId.eq(u.as_str()));
        }
        if let Some(a) = f.agent_id {
            q = q.filter(connections::Column::AgentId.eq(a.0));
        }
        if let Some(s) = f.mcp_server_id {
            q = q.filter(connections::Column::McpServerId.eq(s.0));
        }
        if let Some(s) = f.status {
            q = q.filter(connections::Column::Status.eq(s.as_str()));
        }
        let rows = q.all(&self.store.db).await.map_err(map_err)?;
        let items = rows.into_iter().map(|m| self.connection_from_row(m)).collect::<Result<Vec<_>, _>>()?;
        Ok(crate::page::Page::from_overfetch(items, page.limit, |c| c.id))
    }

    pub async fn get_connection(&self, id: uuid::Uuid) -> Result<Connection, DomainError> {
        let row = self
            .find_by_id::<connections::Entity, _>(id)
            .one(&self.store.db)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::not_found("connection", id))?;
        self.connection_from_row(row)
    }
}
