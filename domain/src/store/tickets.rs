//! Session-ticket keys (one Ed25519 key per tenant, private half sealed) and revocations.

use sea_orm::{ActiveModelTrait, ColumnTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::entities::{revoked_tickets, tenant_signing_keys};
use super::{TenantStore, is_unique_violation, map_err};
use crate::DomainError;
use crate::crypto::SealContext;
use crate::tenant::Actor;
use crate::ticket::SigningKey;

impl TenantStore<'_> {
    fn key_ctx(&self) -> SealContext<'static> {
        SealContext {
            tenant: self.tenant_id,
            table: "tenant_signing_keys",
            column: "private_key",
            row: self.tenant_id.0,
        }
    }

    /// The tenant's signing key, created on first use.
    pub async fn signing_key(&self) -> Result<SigningKey, DomainError> {
        let internal = |e: crate::ticket::TicketError| DomainError::internal_from("a ticket key could not be made", e);
        if let Some(row) = self
            .find_by_id::<tenant_signing_keys::Entity, _>(self.tenant_id.0)
            .one(&self.store.db)
            .await
            .map_err(map_err)?
        {
            let private = self
                .store
                .envelope
                .open(&self.key_ctx(), &row.private_key)
                .map_err(|e| DomainError::internal_from("ticket key", e))?;
            return SigningKey::from_private_bytes(&private).map_err(internal);
        }
        let key = SigningKey::generate();
        let sealed = self
            .store
            .envelope
            .seal(&self.key_ctx(), &key.private_bytes())
            .map_err(|e| DomainError::internal_from("a ticket key could not be made", e))?;
        let row = tenant_signing_keys::ActiveModel {
            tenant_id: Set(self.tenant_id.0),
            private_key: Set(sealed),
            public_key: Set(key.public_hex()),
            created_at: Set(crate::clock::now()),
        };
        match row.insert(&self.store.db).await {
            Ok(_) => Ok(key),
            // Another request created it first: use that one.
            Err(e) if is_unique_violation(&e) => Box::pin(self.signing_key()).await,
            Err(e) => Err(map_err(e)),
        }
    }

    /// Records revocation ids; already revoked ids are fine.
    pub async fn revoke_tickets(&self, actor: &Actor, ids: &[String]) -> Result<(), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        for id in ids {
            let exists = self
                .find_by_id::<revoked_tickets::Entity, _>((self.tenant_id.0, id.clone()))
                .one(&txn)
                .await
                .map_err(map_err)?
                .is_some();
            if !exists {
                revoked_tickets::ActiveModel {
                    tenant_id: Set(self.tenant_id.0),
                    revocation_id: Set(id.clone()),
                    revoked_at: Set(crate::clock::now()),
                }
                .insert(&txn)
                .await
                .map_err(map_err)?;
            }
        }
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(self.tenant_id),
                actor,
                action: "session_ticket.revoked",
                target_type: "session_ticket",
                target_id: ids.first().cloned(),
                data: json!({"revocation_ids": ids}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)
    }

    /// Whether any of a ticket's revocation ids (one per block) is revoked.
    pub async fn any_ticket_revoked(&self, ids: &[String]) -> Result<bool, DomainError> {
        let n = self
            .find::<revoked_tickets::Entity>()
            .filter(revoked_tickets::Column::RevocationId.is_in(ids.iter().cloned()))
            .count(&self.store.db)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }
}
