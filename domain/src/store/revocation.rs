//! Revocation: a grant becomes unusable in the transaction that queues the job revoking its
//! tokens at the provider (RFC 7009). The job carries a snapshot of everything revoking needs —
//! the sealed tokens, the revocation endpoint, the client's credentials with the secret re-sealed
//! for that job alone — so it works after the grant's server, agent, user or tenant is gone.

use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};

use super::entities::connections;
use super::issuances::insert_issuance;
use super::{TenantStore, map_err};
use crate::connection::{Connection, ConnectionStatus, GrantKey};
use crate::crypto::{SealContext, Secret};
use crate::{AgentId, DomainError, McpServerId};

fn job_secret_ctx(tenant: crate::TenantId, job: uuid::Uuid) -> SealContext<'static> {
    SealContext { tenant, table: "jobs", column: "client_secret", row: job }
}

/// Servers (and their secrets) read while revoking many grants at once.
type ServerCache =
    std::collections::HashMap<McpServerId, (Option<crate::mcp_server::McpServer>, crate::mcp_server::AuthSecrets)>;

impl TenantStore<'_> {
    /// Makes the grant unusable at once: status `revoked`, token set purged. Returns the grant as
    /// it was, or `None` when there was none.
    pub async fn revoke_connection(
        &self,
        key: &GrantKey,
        actor: &crate::tenant::Actor,
    ) -> Result<Option<Connection>, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let Some(row) =
            self.find::<connections::Entity>().filter(self.grant_filter(key)).one(&txn).await.map_err(map_err)?
        else {
            return Ok(None);
        };
        let before = self.revoke_row(&txn, row, actor, &mut ServerCache::new()).await?;
        txn.commit().await.map_err(map_err)?;
        Ok(Some(before))
    }

    /// Revokes every grant of a server, an agent, a user (or, with no filter, the whole tenant)
    /// about to be deleted, in the deletion's transaction: each becomes unusable, and its tokens
    /// go to a revocation job that needs nothing from the deleted rows.
    pub(super) async fn revoke_all(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        server: Option<McpServerId>,
        agent: Option<AgentId>,
        user: Option<&str>,
        actor: &crate::tenant::Actor,
    ) -> Result<usize, DomainError> {
        let mut q = self
            .find::<connections::Entity>()
            .filter(connections::Column::Status.ne(ConnectionStatus::Revoked.as_str()));
        if let Some(s) = server {
            q = q.filter(connections::Column::McpServerId.eq(s.0));
        }
        if let Some(a) = agent {
            q = q.filter(connections::Column::AgentId.eq(a.0));
        }
        if let Some(u) = user {
            q = q.filter(connections::Column::UserId.eq(u));
        }
        let rows = q.all(txn).await.map_err(map_err)?;
        let n = rows.len();
        // Each server is read once, however many grants it has (a tenant's deletion revokes all).
        let mut servers = ServerCache::new();
        for row in rows {
            self.revoke_row(txn, row, actor, &mut servers).await?;
        }
        Ok(n)
    }

    /// The revocation of one grant inside `txn`: status `revoked`, tokens moved into a job (with
    /// a snapshot of what revoking them needs: the revocation endpoint and the client's
    /// credentials, the secret re-sealed for the job), the event, the audit entry, the issuance.
    async fn revoke_row(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        row: connections::Model,
        actor: &crate::tenant::Actor,
        servers: &mut ServerCache,
    ) -> Result<Connection, DomainError> {
        let before = self.connection_from_row(row.clone())?;
        let before_version = row.version;
        let key = before.key.clone();
        // The tokens leave the grant now (unusable at once) and travel, still sealed, with the job
        // that revokes them at the provider; a reconnect meanwhile gets a fresh token set that
        // this job never touches.
        if let Some(sealed) = &row.token_set {
            use base64::Engine as _;
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
            let job_id = uuid::Uuid::now_v7();
            let (server, secrets) = match servers.get(&key.mcp_server_id) {
                Some(cached) => cached.clone(),
                None => {
                    let read = (
                        Some(self.get_mcp_server(key.mcp_server_id).await?),
                        self.mcp_server_secrets(key.mcp_server_id).await?,
                    );
                    servers.insert(key.mcp_server_id, read.clone());
                    read
                }
            };
            let facts = server.as_ref().map(crate::mcp_server::McpServer::facts).unwrap_or_default();
            let client_secret = match &secrets.client_secret {
                Some(secret) => Some(b64(&self
                    .store
                    .envelope
                    .seal(&job_secret_ctx(self.tenant_id, job_id), secret.expose().as_bytes())
                    .map_err(|e| DomainError::internal_from("sealing a job secret failed", e))?)),
                None => None,
            };
            let job = crate::job::Job::RevokeTokens(Box::new(crate::job::RevokeTokens {
                connection_id: row.id,
                user_id: key.user_id.clone(),
                agent_id: key.agent_id,
                mcp_server_id: key.mcp_server_id,
                sealed: b64(sealed),
                client_id: Some(server.as_ref().and_then(|s| s.config.auth.client_id.clone())),
                revocation_url: facts.revocation_url,
                client_secret,
                token_endpoint_auth_method: facts.token_endpoint_auth_method,
                client_auth: None,
                token_endpoint_auth_methods_supported: facts.token_endpoint_auth_methods_supported,
            }));
            super::jobs::enqueue_with_id(txn, job_id, self.tenant_id, &job, 8).await?;
        }
        super::events::insert_connection_event(
            txn,
            self.tenant_id,
            row.id,
            &key,
            "connection.revoked",
            serde_json::json!({}),
        )
        .await?;
        let mut active: connections::ActiveModel = row.into();
        active.status = Set(ConnectionStatus::Revoked.as_str().to_owned());
        active.token_set = Set(None);
        active.expires_at = Set(None);
        active.next_refresh_at = Set(None);
        // Fences any refresh in flight: its compare-and-swap on the old version now fails.
        active.version = Set(before_version + 1);
        active.lease_owner = Set(None);
        active.lease_until = Set(None);
        active.updated_at = Set(crate::clock::now());
        active.update(txn).await.map_err(map_err)?;
        super::audit::record(txn, super::audit::AuditEntry {
            tenant: Some(self.tenant_id),
            actor,
            action: "connection.revoked",
            target_type: "connection",
            target_id: Some(before.id.to_string()),
            data: serde_json::json!({"user_id": key.user_id, "agent_id": key.agent_id, "mcp_server_id": key.mcp_server_id}),
        })
        .await?;
        if before.status == ConnectionStatus::Connected {
            insert_issuance(txn, &key, "revoked", None, &before.scopes, None).await?;
        }
        Ok(before)
    }

    /// Opens a client secret a revocation job carries (sealed for that job alone).
    pub fn open_job_secret(&self, job_id: uuid::Uuid, sealed: &[u8]) -> Result<Secret, DomainError> {
        let plain = self
            .store
            .envelope
            .open(&job_secret_ctx(self.tenant_id, job_id), sealed)
            .map_err(|e| DomainError::internal_from("job secret", e))?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| DomainError::internal("job secret is not text"))
    }
}
