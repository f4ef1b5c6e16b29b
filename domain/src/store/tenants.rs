//! Tenants and API keys: the admin plane, plus the key lookup every tenant request makes.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::entities::{api_keys, tenants};
use super::{AdminStore, Store, TenantStore, is_unique_violation, map_err};
use crate::api_key;
use crate::page::{Page, PageRequest};
use crate::tenant::{Actor, ApiKey, CreatedApiKey, Tenant, TenantSpec};
use crate::{ApiKeyId, DomainError, TenantId, slug};

fn tenant(m: tenants::Model) -> Tenant {
    Tenant { id: m.id.into(), name: m.name, slug: m.slug, created_at: m.created_at, deleted_at: m.deleted_at }
}

fn key(m: api_keys::Model) -> ApiKey {
    ApiKey { id: m.id.into(), tenant_id: m.tenant_id.into(), name: m.name, prefix: m.prefix, created_at: m.created_at }
}

impl TenantStore<'_> {
    /// This store's tenant (its slug names it in gateway routes).
    pub async fn own_tenant(&self) -> Result<Tenant, DomainError> {
        self.find::<tenants::Entity>()
            .one(&self.store.db)
            .await
            .map_err(map_err)?
            .map(tenant)
            .ok_or_else(|| DomainError::not_found("tenant", self.tenant_id))
    }
}

impl AdminStore<'_> {
    /// Creates a tenant and its first API key in one transaction.
    pub async fn create_tenant(&self, actor: &Actor, spec: TenantSpec) -> Result<(Tenant, CreatedApiKey), DomainError> {
        let explicit = spec.slug.is_some();
        let base = spec.slug.unwrap_or_else(|| slug::derive(&spec.name).unwrap_or_else(|| "tenant".to_owned()));
        for n in 1..=20 {
            let candidate = slug::numbered(&base, n);
            match self.insert_tenant(actor, &spec.name, &candidate).await {
                Err(DomainError::Conflict { .. }) if !explicit => continue,
                Err(DomainError::Conflict { .. }) => {
                    return Err(DomainError::Conflict {
                        code: crate::ErrorCode::SlugTaken,
                        message: format!("a tenant with slug `{candidate}` already exists"),
                    });
                }
                other => return other,
            }
        }
        Err(DomainError::Conflict {
            code: crate::ErrorCode::SlugTaken,
            message: format!("no free slug near `{base}`; pass one"),
        })
    }

    async fn insert_tenant(
        &self,
        actor: &Actor,
        name: &str,
        slug: &str,
    ) -> Result<(Tenant, CreatedApiKey), DomainError> {
        let (_write, txn) = self.begin_write().await?;
        let model = tenants::ActiveModel {
            id: Set(TenantId::new().0),
            name: Set(name.to_owned()),
            slug: Set(slug.to_owned()),
            created_at: Set(crate::clock::now()),
            deleted_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                DomainError::Conflict { code: crate::ErrorCode::SlugTaken, message: String::new() }
            } else {
                map_err(e)
            }
        })?;
        let t = tenant(model);
        let created = insert_key(&txn, t.id, Some("default".into())).await?;
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(t.id),
                actor,
                action: "tenant.created",
                target_type: "tenant",
                target_id: Some(t.id.to_string()),
                data: json!({"name": t.name, "slug": t.slug, "api_key_id": created.key.id}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        Ok((t, created))
    }

    pub async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>, DomainError> {
        let mut q = tenants::Entity::find().order_by_asc(tenants::Column::Id).limit(page.limit + 1);
        if let Some(after) = page.after {
            q = q.filter(tenants::Column::Id.gt(after));
        }
        let rows = q.all(&self.db).await.map_err(map_err)?;
        Ok(Page::from_overfetch(rows.into_iter().map(tenant).collect(), page.limit, |t| t.id.0))
    }

    pub async fn get_tenant(&self, id: TenantId) -> Result<Tenant, DomainError> {
        tenants::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(tenant)
            .ok_or_else(|| DomainError::not_found("tenant", id))
    }

    /// A live tenant by its slug or its id (the first segment of its public URLs).
    pub async fn tenant_by_segment(&self, segment: &str) -> Result<Option<Tenant>, DomainError> {
        let mut q = tenants::Entity::find().filter(tenants::Column::DeletedAt.is_null());
        q = match uuid::Uuid::try_parse(segment) {
            Ok(id) => q.filter(tenants::Column::Id.eq(id)),
            Err(_) => q.filter(tenants::Column::Slug.eq(segment)),
        };
        Ok(q.one(&self.db).await.map_err(map_err)?.map(tenant))
    }

    pub async fn count_tenants(&self) -> Result<u64, DomainError> {
        tenants::Entity::find().count(&self.db).await.map_err(map_err)
    }

    /// Adds an API key to a tenant; the plaintext is returned once and never stored.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        tenant_id: TenantId,
        name: Option<String>,
    ) -> Result<CreatedApiKey, DomainError> {
        let (_write, txn) = self.begin_write().await?;
        let Some(tenant) = tenants::Entity::find_by_id(tenant_id.0).one(&txn).await.map_err(map_err)? else {
            return Err(DomainError::not_found("tenant", tenant_id));
        };
        if tenant.deleted_at.is_some() {
            return Err(DomainError::Conflict {
                code: crate::ErrorCode::TenantDeleted,
                message: format!("tenant {tenant_id} is being deleted; it takes no new keys"),
            });
        }
        let created = insert_key(&txn, tenant_id, name).await?;
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(tenant_id),
                actor,
                action: "api_key.created",
                target_type: "api_key",
                target_id: Some(created.key.id.to_string()),
                data: json!({"prefix": created.key.prefix, "name": created.key.name}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        Ok(created)
    }

    /// Deletes a key; requests presenting it fail from now on (other processes: after their
    /// authentication cache expires).
    pub async fn delete_api_key(
        &self,
        actor: &Actor,
        tenant_id: TenantId,
        key_id: ApiKeyId,
    ) -> Result<ApiKey, DomainError> {
        let (_write, txn) = self.begin_write().await?;
        let found = api_keys::Entity::find_by_id(key_id.0)
            .filter(api_keys::Column::TenantId.eq(tenant_id.0))
            .one(&txn)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::not_found("api key", key_id))?;
        api_keys::Entity::delete_by_id(key_id.0).exec(&txn).await.map_err(map_err)?;
        audit::record(
            &txn,
            AuditEntry {
                tenant: Some(tenant_id),
                actor,
                action: "api_key.deleted",
                target_type: "api_key",
                target_id: Some(key_id.to_string()),
                data: json!({"prefix": found.prefix}),
            },
        )
        .await?;
        txn.commit().await.map_err(map_err)?;
        Ok(key(found))
    }
}

impl Store {
    /// Finds the key a bearer value names: by its visible prefix, then a constant-time digest match.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<Option<ApiKey>, DomainError> {
        let Some((prefix, digest)) = api_key::parse(presented) else { return Ok(None) };
        let rows = api_keys::Entity::find()
            .filter(api_keys::Column::Prefix.eq(prefix))
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().find(|r| api_key::digests_match(&r.digest, &digest)).map(key))
    }
}

async fn insert_key(
    db: &impl sea_orm::ConnectionTrait,
    tenant_id: TenantId,
    name: Option<String>,
) -> Result<CreatedApiKey, DomainError> {
    let generated =
        api_key::generate().map_err(|e| DomainError::internal_from("an API key could not be generated", e))?;
    let model = api_keys::ActiveModel {
        id: Set(ApiKeyId::new().0),
        tenant_id: Set(tenant_id.0),
        name: Set(name),
        prefix: Set(generated.prefix),
        digest: Set(generated.digest.to_vec()),
        created_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await
    .map_err(map_err)?;
    Ok(CreatedApiKey { key: key(model), plaintext: generated.plaintext })
}
