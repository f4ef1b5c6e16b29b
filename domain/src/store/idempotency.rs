//! Idempotency records for `Idempotency-Key`.
//!
//! A record is claimed by inserting its row before the work runs (the primary key is the lock, in
//! every backend), completed with the response afterwards, and released if the work fails with a
//! server error so that a retry can run it again. The response is sealed: a tenant-creation
//! response holds an API key. Records older than [`TTL`] are treated as absent and overwritten.

use chrono::Duration;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::entities::idempotency_keys;
use super::{Store, is_unique_violation, map_err};
use crate::crypto::{SealContext, hex, sha256};
use crate::{DomainError, TenantId};

/// How long a key is remembered.
pub const TTL: Duration = Duration::hours(24);

/// How long a claim may stay in progress before it counts as abandoned (its request was cut off
/// by the request deadline, 30 s by default, or its process died) and a retry may take it over.
pub const ABANDONED: Duration = Duration::minutes(2);

/// One `Idempotency-Key` in its scope (the caller and the route).
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    key_hash: String,
    request_hash: [u8; 32],
    tenant: TenantId,
}

impl IdempotencyKey {
    /// `scope` names the caller and the operation, e.g. `tenant:<id>:create_mcp_server`; `tenant`
    /// binds the sealed response (the nil id for the admin plane).
    #[must_use]
    pub fn new(tenant: TenantId, scope: &str, key: &str, request_body: &[u8]) -> Self {
        let key_hash = hex(&sha256(format!("{scope}\n{key}").as_bytes()));
        Self { key_hash, request_hash: sha256(request_body), tenant }
    }

    fn seal_ctx(&self) -> SealContext<'_> {
        // The row id of the AAD: the first 16 bytes of the key hash's bytes.
        let mut row = [0u8; 16];
        row.copy_from_slice(&sha256(self.key_hash.as_bytes())[..16]);
        SealContext {
            tenant: self.tenant,
            table: "idempotency_keys",
            column: "response",
            row: uuid::Uuid::from_bytes(row),
        }
    }
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug)]
pub enum Begin {
    /// First time: run it, then [`Store::complete_idempotent`] or [`Store::release_idempotent`].
    Proceed,
    /// Seen with the same body: send this stored response again.
    Replay { status: u16, body: Vec<u8> },
    /// Seen with a different body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

impl Store {
    pub async fn begin_idempotent(&self, key: &IdempotencyKey) -> Result<Begin, DomainError> {
        for _ in 0..2 {
            let claim = idempotency_keys::ActiveModel {
                key_hash: Set(key.key_hash.clone()),
                request_hash: Set(key.request_hash.to_vec()),
                status: Set(None),
                response: Set(None),
                created_at: Set(crate::clock::now()),
            };
            match claim.insert(&self.db).await {
                Ok(_) => return Ok(Begin::Proceed),
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(map_err(e)),
            }
            let Some(row) =
                idempotency_keys::Entity::find_by_id(key.key_hash.clone()).one(&self.db).await.map_err(map_err)?
            else {
                continue; // released meanwhile: claim again
            };
            if row.created_at < crate::clock::now() - TTL {
                idempotency_keys::Entity::delete_by_id(key.key_hash.clone()).exec(&self.db).await.map_err(map_err)?;
                continue;
            }
            if row.status.is_none() && row.created_at < crate::clock::now() - ABANDONED {
                // Its request was cut off (a deadline, a crash) before it could record or release
                // the key: the claim is taken over, so the client's retry is not locked out.
                idempotency_keys::Entity::delete_many()
                    .filter(idempotency_keys::Column::KeyHash.eq(key.key_hash.clone()))
                    .filter(idempotency_keys::Column::Status.is_null())
                    .filter(idempotency_keys::Column::CreatedAt.eq(row.created_at))
                    .exec(&self.db)
                    .await
                    .map_err(map_err)?;
                continue;
            }
            if row.request_hash != key.request_hash {
                return Ok(Begin::Mismatch);
            }
            return match (row.status, row.response) {
                (Some(status), Some(sealed)) => {
                    let body = self
                        .envelope
                        .open(&key.seal_ctx(), &sealed)
                        .map_err(|e| DomainError::internal_from("sealing an idempotent response failed", e))?;
                    Ok(Begin::Replay { status: u16::try_from(status).unwrap_or(500), body })
                }
                _ => Ok(Begin::InProgress),
            };
        }
        Ok(Begin::InProgress)
    }

    pub async fn complete_idempotent(&self, key: &IdempotencyKey, status: u16, body: &[u8]) -> Result<(), DomainError> {
        let sealed = self
            .envelope
            .seal(&key.seal_ctx(), body)
            .map_err(|e| DomainError::internal_from("sealing an idempotent response failed", e))?;
        idempotency_keys::Entity::update_many()
            .col_expr(idempotency_keys::Column::Status, sea_orm::sea_query::Expr::value(i32::from(status)))
            .col_expr(idempotency_keys::Column::Response, sea_orm::sea_query::Expr::value(sealed))
            .filter(idempotency_keys::Column::KeyHash.eq(key.key_hash.clone()))
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Forgets a claim whose work failed, so that the client's retry runs it again.
    pub async fn release_idempotent(&self, key: &IdempotencyKey) -> Result<(), DomainError> {
        idempotency_keys::Entity::delete_by_id(key.key_hash.clone()).exec(&self.db).await.map_err(map_err)?;
        Ok(())
    }
}
