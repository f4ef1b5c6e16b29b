//! MCP servers: public config as JSON, secrets sealed with AAD bound to (tenant, row).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    Select, Set,
};
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::entities::mcp_servers;
use super::{TenantStore, is_unique_violation, json_err, map_err};
use crate::crypto::SealContext;
use crate::mcp_server::{AuthSecrets, McpServer, McpServerSpec};
use crate::page::{Page, PageRequest};
use crate::tenant::Actor;
use crate::{DomainError, McpServerId, slug};

const TABLE: &str = "mcp_servers";
const SECRETS: &str = "secrets";

/// A server row without its sealed secrets: what reads that only show a server fetch.
#[derive(Debug, FromQueryResult)]
pub(super) struct ServerRow {
    id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    name: String,
    slug: String,
    description: Option<String>,
    config: String,
    secret_hints: String,
    discovery_result: Option<String>,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
}

impl From<mcp_servers::Model> for ServerRow {
    fn from(m: mcp_servers::Model) -> Self {
        Self {
            id: m.id,
            tenant_id: m.tenant_id,
            name: m.name,
            slug: m.slug,
            description: m.description,
            config: m.config,
            secret_hints: m.secret_hints,
            discovery_result: m.discovery_result,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Every column but `secrets`: lists and gets never need the ciphertext.
fn select_public() -> Select<mcp_servers::Entity> {
    use mcp_servers::Column as C;
    mcp_servers::Entity::find().select_only().columns([
        C::Id,
        C::TenantId,
        C::Name,
        C::Slug,
        C::Description,
        C::Config,
        C::SecretHints,
        C::DiscoveryResult,
        C::CreatedAt,
        C::UpdatedAt,
    ])
}

pub(super) fn model_to_server(m: impl Into<ServerRow>) -> Result<McpServer, DomainError> {
    let m: ServerRow = m.into();
    Ok(McpServer {
        id: m.id.into(),
        tenant_id: m.tenant_id.into(),
        name: m.name,
        slug: m.slug,
        description: m.description,
        config: serde_json::from_str(&m.config).map_err(json_err("server config"))?,
        secret_hints: serde_json::from_str(&m.secret_hints).map_err(json_err("secret hints"))?,
        discovery_result: m
            .discovery_result
            .map(serde_json::value::RawValue::from_string)
            .transpose()
            .map_err(json_err("discovery result"))?,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

impl TenantStore<'_> {
    fn seal_ctx(&self, id: McpServerId) -> SealContext<'static> {
        SealContext { tenant: self.tenant_id, table: TABLE, column: SECRETS, row: id.0 }
    }

    fn seal(&self, id: McpServerId, secrets: &AuthSecrets) -> Result<Option<Vec<u8>>, DomainError> {
        if secrets.is_empty() {
            return Ok(None);
        }
        self.store
            .envelope
            .seal(&self.seal_ctx(id), &secrets.to_sealable_json())
            .map(Some)
            .map_err(|e| DomainError::internal_from("sealing server secrets failed", e))
    }

    /// Creates a server. Without an explicit slug one is derived from the name and numbered
    /// (`linear-2`) when taken; an explicit slug that is taken is a conflict.
    pub async fn create_mcp_server(&self, actor: &Actor, spec: McpServerSpec) -> Result<McpServer, DomainError> {
        let explicit = spec.slug.is_some();
        let base = spec.slug.clone().unwrap_or_else(|| slug::derive(&spec.name).unwrap_or_else(|| "server".to_owned()));
        let (_write, txn) = self.store.begin_write().await?;
        let slug = if explicit { base } else { self.free_slug(&txn, &base).await? };
        let id = McpServerId::new();
        let secrets = spec.apply_secrets(&AuthSecrets::default());
        let now = crate::clock::now();
        let model = mcp_servers::ActiveModel {
            id: Set(id.0),
            tenant_id: Set(self.tenant_id.0),
            name: Set(spec.name),
            slug: Set(slug.clone()),
            description: Set(spec.description),
            config: Set(serde_json::to_string(&spec.config).map_err(json_err("server config"))?),
            secrets: Set(self.seal(id, &secrets)?),
            secret_hints: Set(serde_json::to_string(&secrets.hints()).map_err(json_err("secret hints"))?),
            discovery_result: Set(spec.discovery_result.as_ref().map(ToString::to_string)),
            created_at: Set(now),
            updated_at: Set(now),
            rediscover_at: Set(Some(now + super::REDISCOVER_EVERY)),
        }
        .insert(&txn)
        .await
        .map_err(|e| slug_conflict(e, &slug))?;
        let server = model_to_server(model)?;
        audit::record(&txn, self.entry(actor, "mcp_server.created", &server)).await?;
        txn.commit().await.map_err(map_err)?;
        Ok(server)
    }

    async fn free_slug(&self, db: &impl ConnectionTrait, base: &str) -> Result<String, DomainError> {
        let taken: Vec<String> = self
            .find::<mcp_servers::Entity>()
            .select_only()
            .column(mcp_servers::Column::Slug)
            .filter(mcp_servers::Column::Slug.starts_with(base))
            .into_tuple()
            .all(db)
            .await
            .map_err(map_err)?;
        (1..=1000).map(|n| slug::numbered(base, n)).find(|c| !taken.contains(c)).ok_or_else(|| DomainError::Conflict {
            code: crate::ErrorCode::SlugTaken,
            message: format!("no free slug near `{base}`; pass one"),
        })
    }

    pub async fn list_mcp_servers(&self, page: PageRequest) -> Result<Page<McpServer>, DomainError> {
        let mut q = select_public()
            .filter(mcp_servers::Column::TenantId.eq(self.tenant_id.0))
            .order_by_asc(mcp_servers::Column::Id)
            .limit(page.limit + 1);
        if let Some(after) = page.after {
            q = q.filter(mcp_servers::Column::Id.gt(after));
        }
        let rows = q.into_model::<ServerRow>().all(&self.store.db).await.map_err(map_err)?;
        let servers = rows.into_iter().map(model_to_server).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(servers, page.limit, |s| s.id.0))
    }

    pub(super) async fn find_server(
        &self,
        db: &impl ConnectionTrait,
        id: McpServerId,
    ) -> Result<mcp_servers::Model, DomainError> {
        self.find_by_id::<mcp_servers::Entity, _>(id.0)
            .one(db)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::not_found("mcp server", id))
    }

    pub async fn get_mcp_server(&self, id: McpServerId) -> Result<McpServer, DomainError> {
        let row = select_public()
            .filter(mcp_servers::Column::Id.eq(id.0))
            .filter(mcp_servers::Column::TenantId.eq(self.tenant_id.0))
            .into_model::<ServerRow>()
            .one(&self.store.db)
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::not_found("mcp server", id))?;
        model_to_server(row)
    }

    /// The server's secrets in plaintext, for the code that sends them upstream.
    pub async fn mcp_server_secrets(&self, id: McpServerId) -> Result<AuthSecrets, DomainError> {
        let model = self.find_server(&self.store.db, id).await?;
        self.open(id, model.secrets.as_deref())
    }

    fn open(&self, id: McpServerId, sealed: Option<&[u8]>) -> Result<AuthSecrets, DomainError> {
        let Some(sealed) = sealed else { return Ok(AuthSecrets::default()) };
        let plain = self
            .store
            .envelope
            .open(&self.seal_ctx(id), sealed)
            .map_err(|e| DomainError::internal(format!("mcp server {id} secrets: {e}")))?;
        AuthSecrets::from_sealed_json(&plain)
    }

    /// Replaces the server with a validated spec (the caller merged a PATCH into the stored one).
    /// With `unchanged_since` (the `updated_at` the spec was built from), a server changed
    /// meanwhile is a `409 server_changed` and nothing is written: a slow rediscovery must not
    /// undo an edit made while it ran.
    pub async fn update_mcp_server(
        &self,
        actor: &Actor,
        id: McpServerId,
        spec: McpServerSpec,
        unchanged_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<McpServer, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let current = self.find_server(&txn, id).await?;
        if unchanged_since.is_some_and(|at| at != current.updated_at) {
            return Err(DomainError::Conflict {
                code: crate::ErrorCode::ServerChanged,
                message: format!("mcp server {id} was changed while it was being rediscovered; try again"),
            });
        }
        let secrets = spec.apply_secrets(&self.open(id, current.secrets.as_deref())?);
        let slug = spec.slug.clone().unwrap_or_else(|| current.slug.clone());
        if slug != current.slug {
            self.refuse_slug_change(&txn, "mcp server", &current.slug, None, Some(id)).await?;
        }
        let mut active: mcp_servers::ActiveModel = current.into();
        active.name = Set(spec.name);
        active.slug = Set(slug.clone());
        active.description = Set(spec.description);
        active.config = Set(serde_json::to_string(&spec.config).map_err(json_err("server config"))?);
        active.secrets = Set(self.seal(id, &secrets)?);
        active.secret_hints = Set(serde_json::to_string(&secrets.hints()).map_err(json_err("secret hints"))?);
        if let Some(result) = &spec.discovery_result {
            active.discovery_result = Set(Some(result.to_string()));
            active.rediscover_at = Set(Some(crate::clock::now() + super::REDISCOVER_EVERY));
        }
        active.updated_at = Set(crate::clock::now());
        let model = active.update(&txn).await.map_err(|e| slug_conflict(e, &slug))?;
        let server = model_to_server(model)?;
        audit::record(&txn, self.entry(actor, "mcp_server.updated", &server)).await?;
        txn.commit().await.map_err(map_err)?;
        Ok(server)
    }

    /// Keeps the client authentication method that the server's token endpoint accepted (after it
    /// refused the one discovery chose) in the server's discovery result, and on the registration
    /// of that client when Switchboard registered it, so that rediscovery keeps it too. The
    /// server's `updated_at` is left alone: this is no edit that a rediscovery should yield to.
    pub async fn keep_token_endpoint_auth_method(
        &self,
        id: McpServerId,
        client_id: &str,
        method: &str,
    ) -> Result<(), DomainError> {
        use sea_orm::sea_query::Expr;
        let (_write, txn) = self.store.begin_write().await?;
        let current = self.find_server(&txn, id).await?;
        let mut discovery: serde_json::Value =
            current.discovery_result.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_else(|| json!({}));
        if let Some(d) = discovery.as_object_mut() {
            d.insert("token_endpoint_auth_method".into(), json!(method));
        }
        self.update::<mcp_servers::Entity>()
            .col_expr(mcp_servers::Column::DiscoveryResult, Expr::value(discovery.to_string()))
            .filter(mcp_servers::Column::Id.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        self.update::<super::entities::oauth_clients::Entity>()
            .col_expr(super::entities::oauth_clients::Column::TokenEndpointAuthMethod, Expr::value(method))
            .filter(super::entities::oauth_clients::Column::ClientId.eq(client_id))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(())
    }

    /// Deletes the server; its attachments go with it.
    pub async fn delete_mcp_server(&self, actor: &Actor, id: McpServerId) -> Result<(), DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let server = model_to_server(self.find_server(&txn, id).await?)?;
        // Its grants end with it, and their tokens are revoked at the provider.
        self.revoke_all(&txn, Some(id), None, None, actor).await?;
        self.delete::<mcp_servers::Entity>()
            .filter(mcp_servers::Column::Id.eq(id.0))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        audit::record(&txn, self.entry(actor, "mcp_server.deleted", &server)).await?;
        txn.commit().await.map_err(map_err)
    }

    fn entry<'a>(&self, actor: &'a Actor, action: &'static str, s: &McpServer) -> AuditEntry<'a> {
        AuditEntry {
            tenant: Some(self.tenant_id),
            actor,
            action,
            target_type: "mcp_server",
            target_id: Some(s.id.to_string()),
            data: json!({"name": s.name, "slug": s.slug, "endpoint": s.config.endpoint, "auth_type": s.config.auth.kind}),
        }
    }
}

fn slug_conflict(e: sea_orm::DbErr, slug: &str) -> DomainError {
    if is_unique_violation(&e) {
        DomainError::Conflict {
            code: crate::ErrorCode::SlugTaken,
            message: format!("an mcp server with slug `{slug}` already exists"),
        }
    } else {
        map_err(e)
    }
}
