//! The gateway's authorization server at rest: the tenant's identity provider (secret sealed), the
//! clients registered by DCR, and the token families. Tokens are kept as SHA-256 digests only.
//!
//! A family is one row per exchanged authorization code (the code's digest is unique, so a code
//! exchanged twice is caught by the database, whichever instance sees it) and one row per refresh
//! token. Rotation spends a token with a conditional update (`used_at IS NULL`), so of two
//! concurrent presentations exactly one rotates and the other is reuse.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::entities::{gateway_clients, gateway_grants, gateway_refresh_tokens, identity_providers};
use super::{TenantStore, is_unique_violation, json_err, map_err};
use crate::crypto::{SealContext, Secret};
use crate::sign_in::{GatewayClient, GatewayGrant, IdentityProvider, IdpMetadata, Rotation};
use crate::tenant::Actor;
use crate::{AgentId, DomainError};

/// How long a family lives in all, however often it is refreshed: the user signs in again after.
pub const FAMILY_LIFE_DAYS: i64 = 30;

/// A new family's first tokens.
#[derive(Clone, Debug)]
pub struct NewGatewayGrant<'a> {
    pub code_hash: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub agent_id: AgentId,
    pub resource: &'a str,
    pub refresh_hash: &'a str,
    pub access_revocation_id: &'a str,
    pub refresh_expires_at: DateTime<Utc>,
}

impl TenantStore<'_> {
    fn idp_ctx(&self) -> SealContext<'static> {
        SealContext {
            tenant: self.tenant_id,
            table: "identity_providers",
            column: "client_secret",
            row: self.tenant_id.0,
        }
    }

    /// The tenant's identity provider, when one is configured.
    pub async fn identity_provider(&self) -> Result<Option<IdentityProvider>, DomainError> {
        let Some(m) = self
            .find_by_id::<identity_providers::Entity, _>(self.tenant_id.0)
            .one(&self.store.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let client_secret = m
            .client_secret
            .as_deref()
            .map(|sealed| {
                let plain = self
                    .store
                    .envelope
                    .open(&self.idp_ctx(), sealed)
                    .map_err(|e| DomainError::internal(format!("identity provider secret: {e}")))?;
                String::from_utf8(plain)
                    .map(Secret::new)
                    .map_err(|_| DomainError::internal("sealed secret is not UTF-8"))
            })
            .transpose()?;
        Ok(Some(IdentityProvider {
            issuer: m.issuer,
            client_id: m.client_id,
            client_secret,
            scopes: serde_json::from_str(&m.scopes).map_err(json_err("identity provider scopes"))?,
            user_claim: m.user_claim,
            rules: serde_json::from_str(&m.rules).map_err(json_err("identity provider rules"))?,
            metadata: serde_json::from_str::<IdpMetadata>(&m.metadata)
                .map_err(json_err("identity provider metadata"))?,
            updated_at: m.updated_at,
        }))
    }

    /// Stores the tenant's identity provider whole (replacing any), with an audit entry.
    pub async fn put_identity_provider(&self, actor: &Actor, idp: &IdentityProvider) -> Result<(), DomainError> {
        let sealed = idp
            .client_secret
            .as_ref()
            .map(|s| self.store.envelope.seal(&self.idp_ctx(), s.expose().as_bytes()))
            .transpose()
            .map_err(|e| DomainError::internal_from("sealing the identity provider secret failed", e))?;
        let (_write, txn) = self.store.begin_write().await?;
        self.delete::<identity_providers::Entity>().exec(&txn).await.map_err(map_err)?;
        identity_providers::ActiveModel {
            tenant_id: Set(self.tenant_id.0),
            issuer: Set(idp.issuer.clone()),
            client_id: Set(idp.client_id.clone()),
            client_secret: Set(sealed),
            scopes: Set(serde_json::to_string(&idp.scopes).map_err(json_err("scopes"))?),
            user_claim: Set(idp.user_claim.clone()),
            rules: Set(serde_json::to_string(&idp.rules).map_err(json_err("rules"))?),
            metadata: Set(serde_json::to_string(&idp.metadata).map_err(json_err("metadata"))?),
            updated_at: Set(idp.updated_at),
        }
        .insert(&txn)
        .await
        .map_err(map_err)?;
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(self.tenant_id),
                actor,
                action: "identity_provider.updated",
                target_type: "identity_provider",
                target_id: Some(idp.issuer.clone()),
                data: json!({"issuer": idp.issuer, "client_id": idp.client_id, "user_claim": idp.user_claim}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)
    }

    /// Removes the tenant's identity provider; whether there was one.
    pub async fn delete_identity_provider(&self, actor: &Actor) -> Result<bool, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let n = self.delete::<identity_providers::Entity>().exec(&txn).await.map_err(map_err)?.rows_affected;
        if n > 0 {
            audit::record(
                &txn,
                AuditEntry {
                    tenant: Some(self.tenant_id),
                    actor,
                    action: "identity_provider.deleted",
                    target_type: "identity_provider",
                    target_id: None,
                    data: json!({}),
                },
            )
            .await?;
        }
        txn.commit().await.map_err(map_err)?;
        Ok(n > 0)
    }

    /// Records a client registered by DCR.
    pub async fn register_gateway_client(&self, client: &GatewayClient) -> Result<(), DomainError> {
        gateway_clients::ActiveModel {
            tenant_id: Set(self.tenant_id.0),
            client_id: Set(client.client_id.clone()),
            client_name: Set(client.client_name.clone()),
            redirect_uris: Set(serde_json::to_string(&client.redirect_uris).map_err(json_err("redirect uris"))?),
            created_at: Set(crate::clock::now()),
        }
        .insert(&self.store.db)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// A client registered by DCR with this tenant.
    pub async fn gateway_client(&self, client_id: &str) -> Result<Option<GatewayClient>, DomainError> {
        let row = self
            .find_by_id::<gateway_clients::Entity, _>((self.tenant_id.0, client_id.to_owned()))
            .one(&self.store.db)
            .await
            .map_err(map_err)?;
        row.map(|m| {
            Ok(GatewayClient {
                client_id: m.client_id,
                client_name: m.client_name,
                redirect_uris: serde_json::from_str(&m.redirect_uris).map_err(json_err("redirect uris"))?,
            })
        })
        .transpose()
    }

    /// Starts a family from an exchanged code. `Ok(None)` when the code was exchanged before: that
    /// family is revoked now (RFC 6749 §4.1.2), and its access tokens' revocation ids recorded.
    pub async fn start_gateway_grant(&self, g: &NewGatewayGrant<'_>) -> Result<Option<uuid::Uuid>, DomainError> {
        let (write, txn) = self.store.begin_write().await?;
        let id = uuid::Uuid::now_v7();
        let now = crate::clock::now();
        let inserted = gateway_grants::ActiveModel {
            id: Set(id),
            tenant_id: Set(self.tenant_id.0),
            code_hash: Set(g.code_hash.to_owned()),
            client_id: Set(g.client_id.to_owned()),
            user_id: Set(g.user_id.to_owned()),
            agent_id: Set(g.agent_id.0),
            resource: Set(g.resource.to_owned()),
            created_at: Set(now),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                drop(txn);
                drop(write);
                let first = self
                    .find::<gateway_grants::Entity>()
                    .filter(gateway_grants::Column::CodeHash.eq(g.code_hash))
                    .one(&self.store.db)
                    .await
                    .map_err(map_err)?;
                if let Some(first) = first {
                    self.revoke_gateway_family(first.id, "code_reused").await?;
                }
                return Ok(None);
            }
            Err(e) => return Err(map_err(e)),
        }
        gateway_refresh_tokens::ActiveModel {
            token_hash: Set(g.refresh_hash.to_owned()),
            tenant_id: Set(self.tenant_id.0),
            grant_id: Set(id),
            access_revocation_id: Set(g.access_revocation_id.to_owned()),
            used_at: Set(None),
            expires_at: Set(g.refresh_expires_at),
        }
        .insert(&txn)
        .await
        .map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(Some(id))
    }

    /// The live family a refresh token belongs to (not spent, not expired, family not revoked),
    /// or `None`. Spent tokens are found too: the caller learns about reuse from [`Self::rotate_gateway_refresh`].
    pub async fn gateway_grant_of_refresh(&self, refresh_hash: &str) -> Result<Option<GatewayGrant>, DomainError> {
        let Some(token) = self
            .find_by_id::<gateway_refresh_tokens::Entity, _>(refresh_hash.to_owned())
            .one(&self.store.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        if token.expires_at <= crate::clock::now() {
            return Ok(None);
        }
        let born_after = crate::clock::now() - chrono::TimeDelta::days(FAMILY_LIFE_DAYS);
        let grant = self
            .find_by_id::<gateway_grants::Entity, _>(token.grant_id)
            .filter(gateway_grants::Column::RevokedAt.is_null())
            .filter(gateway_grants::Column::CreatedAt.gt(born_after))
            .one(&self.store.db)
            .await
            .map_err(map_err)?;
        Ok(grant.map(|m| GatewayGrant {
            id: m.id,
            client_id: m.client_id,
            user_id: m.user_id,
            agent_id: AgentId(m.agent_id),
            resource: m.resource,
        }))
    }

    /// Spends `old_hash` and stores its successor, or — when it was spent already — revokes its
    /// family.
    pub async fn rotate_gateway_refresh(
        &self,
        grant: uuid::Uuid,
        old_hash: &str,
        new_hash: &str,
        access_revocation_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation, DomainError> {
        let (write, txn) = self.store.begin_write().await?;
        let now = crate::clock::now();
        // The family's row first, with a write that locks it (Postgres) until this commits: a
        // revocation running meanwhile waits, then sees the new token's access id; one that ran
        // before leaves nothing to lock.
        let live = self
            .update::<gateway_grants::Entity>()
            .col_expr(gateway_grants::Column::RevokedAt, Expr::col(gateway_grants::Column::RevokedAt).into())
            .filter(gateway_grants::Column::Id.eq(grant))
            .filter(gateway_grants::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(map_err)?
            .rows_affected;
        if live == 0 {
            return Ok(Rotation::Invalid);
        }
        let spent = self
            .update::<gateway_refresh_tokens::Entity>()
            .col_expr(gateway_refresh_tokens::Column::UsedAt, Expr::value(now))
            .filter(gateway_refresh_tokens::Column::TokenHash.eq(old_hash))
            .filter(gateway_refresh_tokens::Column::GrantId.eq(grant))
            .filter(gateway_refresh_tokens::Column::UsedAt.is_null())
            .filter(gateway_refresh_tokens::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await
            .map_err(map_err)?
            .rows_affected;
        if spent == 1 {
            gateway_refresh_tokens::ActiveModel {
                token_hash: Set(new_hash.to_owned()),
                tenant_id: Set(self.tenant_id.0),
                grant_id: Set(grant),
                access_revocation_id: Set(access_revocation_id.to_owned()),
                used_at: Set(None),
                expires_at: Set(expires_at),
            }
            .insert(&txn)
            .await
            .map_err(map_err)?;
            txn.commit().await.map_err(map_err)?;
            return Ok(Rotation::Rotated);
        }
        let reused = self
            .find_by_id::<gateway_refresh_tokens::Entity, _>(old_hash.to_owned())
            .filter(gateway_refresh_tokens::Column::UsedAt.is_not_null())
            .one(&txn)
            .await
            .map_err(map_err)?
            .is_some();
        drop(txn);
        drop(write);
        if reused {
            let revoked = self.revoke_gateway_family(grant, "refresh_token_reused").await?;
            return Ok(Rotation::Reused { revoked });
        }
        Ok(Rotation::Invalid)
    }

    /// Revokes the family of a refresh token (RFC 7009); the access tokens' revocation ids it
    /// recorded, empty when the token is unknown.
    pub async fn revoke_gateway_refresh(&self, refresh_hash: &str) -> Result<Vec<String>, DomainError> {
        let token = self
            .find_by_id::<gateway_refresh_tokens::Entity, _>(refresh_hash.to_owned())
            .one(&self.store.db)
            .await
            .map_err(map_err)?;
        match token {
            Some(t) => self.revoke_gateway_family(t.grant_id, "revoked").await,
            None => Ok(vec![]),
        }
    }

    /// Revokes a family: the grant is marked, every access token issued in it is added to the
    /// ticket revocation set (so the gateway refuses them at once), and an audit entry says why.
    pub async fn revoke_gateway_family(&self, grant: uuid::Uuid, why: &str) -> Result<Vec<String>, DomainError> {
        // Marked first, then read, in one transaction: a rotation either committed before (its
        // token is read here) or finds the family revoked.
        let ids: Vec<String> = {
            let (_write, txn) = self.store.begin_write().await?;
            self.update::<gateway_grants::Entity>()
                .col_expr(gateway_grants::Column::RevokedAt, Expr::value(crate::clock::now()))
                .filter(gateway_grants::Column::Id.eq(grant))
                .filter(gateway_grants::Column::RevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(map_err)?;
            let ids = self
                .find::<gateway_refresh_tokens::Entity>()
                .filter(gateway_refresh_tokens::Column::GrantId.eq(grant))
                .all(&txn)
                .await
                .map_err(map_err)?
                .into_iter()
                .map(|t| t.access_revocation_id)
                .collect();
            txn.commit().await.map_err(map_err)?;
            ids
        };
        self.revoke_tickets(&Actor::System, &ids).await?;
        tracing::info!(tenant.id = %self.tenant_id, grant = %grant, why, tokens = ids.len(), "gateway token family revoked");
        Ok(ids)
    }

    /// Revokes every live family of the tenant — or of one user — (the identity provider changed
    /// or went, the user was deleted); how many.
    pub async fn revoke_gateway_families(&self, user: Option<&str>, why: &str) -> Result<usize, DomainError> {
        let mut q = self.find::<gateway_grants::Entity>().filter(gateway_grants::Column::RevokedAt.is_null());
        if let Some(u) = user {
            q = q.filter(gateway_grants::Column::UserId.eq(u));
        }
        let live = q.all(&self.store.db).await.map_err(map_err)?;
        for g in &live {
            self.revoke_gateway_family(g.id, why).await?;
        }
        Ok(live.len())
    }

    /// Deletes one user's families and their tokens (after revoking them): what erasure leaves.
    pub async fn delete_gateway_families(&self, user: &str) -> Result<u64, DomainError> {
        self.revoke_gateway_families(Some(user), "user_deleted").await?;
        let grants: Vec<uuid::Uuid> = self
            .find::<gateway_grants::Entity>()
            .filter(gateway_grants::Column::UserId.eq(user))
            .all(&self.store.db)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(|g| g.id)
            .collect();
        let (_write, txn) = self.store.begin_write().await?;
        self.delete::<gateway_refresh_tokens::Entity>()
            .filter(gateway_refresh_tokens::Column::GrantId.is_in(grants.clone()))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        let n = self
            .delete::<gateway_grants::Entity>()
            .filter(gateway_grants::Column::Id.is_in(grants))
            .exec(&txn)
            .await
            .map_err(map_err)?
            .rows_affected;
        txn.commit().await.map_err(map_err)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;
    use crate::crypto::Envelope;
    use crate::store::{Store, StoreOptions};
    use switchboard_migrations::{Migrator, MigratorTrait as _};

    async fn tenant(store: &Store, name: &str) -> TenantId {
        let spec = crate::tenant::TenantSpec { name: name.into(), slug: None };
        store.admin().create_tenant(&Actor::System, spec).await.unwrap().0.id
    }

    async fn test_store() -> (Store, TenantId) {
        let dir = std::env::temp_dir().join(format!("sb-signin-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let store =
            Store::connect(&url, Envelope::from_bytes(&[7u8; 32]).unwrap(), &StoreOptions::default()).await.unwrap();
        Migrator::up(store.connection(), None).await.unwrap();
        let t = tenant(&store, "one").await;
        (store, t)
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_presented_again_revokes_its_family() {
        let (store, first) = test_store().await;
        let t = store.tenant(first);
        let agent = AgentId::new();
        let later = crate::clock::now() + chrono::Duration::days(1);
        let grant = t
            .start_gateway_grant(&NewGatewayGrant {
                code_hash: "c1",
                client_id: "client",
                user_id: "alice",
                agent_id: agent,
                resource: "http://gw/mcp/t/a/s",
                refresh_hash: "r1",
                access_revocation_id: "a1",
                refresh_expires_at: later,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.gateway_grant_of_refresh("r1").await.unwrap().unwrap().user_id, "alice");
        assert_eq!(t.rotate_gateway_refresh(grant, "r1", "r2", "a2", later).await.unwrap(), Rotation::Rotated);
        // r1 again: reuse — the family goes, with both access tokens.
        let Rotation::Reused { revoked } = t.rotate_gateway_refresh(grant, "r1", "r3", "a3", later).await.unwrap()
        else {
            panic!("expected reuse")
        };
        assert_eq!(revoked.len(), 2);
        assert!(t.any_ticket_revoked(&["a2".into()]).await.unwrap());
        assert!(t.gateway_grant_of_refresh("r2").await.unwrap().is_none(), "the successor died with its family");
        // The same code exchanged twice: the second exchange is refused and the first family revoked.
        let new = |code_hash: &'static str, refresh_hash: &'static str| NewGatewayGrant {
            code_hash,
            client_id: "client",
            user_id: "alice",
            agent_id: agent,
            resource: "http://gw/mcp/t/a/s",
            refresh_hash,
            access_revocation_id: refresh_hash,
            refresh_expires_at: later,
        };
        assert!(t.start_gateway_grant(&new("c2", "r4")).await.unwrap().is_some());
        assert!(t.start_gateway_grant(&new("c2", "r5")).await.unwrap().is_none());
        assert!(t.gateway_grant_of_refresh("r4").await.unwrap().is_none());
        // Another tenant sees none of it.
        let other = tenant(&store, "two").await;
        assert!(store.tenant(other).gateway_grant_of_refresh("r4").await.unwrap().is_none());
    }
}
