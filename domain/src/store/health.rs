//! Health counters per minute (see [`crate::health`]) and the cross-tenant comparison of the
//! servers registered at one endpoint (`GET /v1/admin/mcp-servers/compare`).
//!
//! Writes come from every process's flusher, for many tenants at once, so they live on
//! [`Store`]; reads of one server's counters are the tenant's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entities::{connections, health_minutes as hm, mcp_servers};
use super::{AdminStore, Store, TenantStore, json_err, map_err};
use crate::health::{BUCKETS, BucketKey, MinuteCounts, Source, StoredBucket};
use crate::mcp_server::McpServer;
use crate::{DomainError, McpServerId};

/// Rows per insert statement: SQLite allows 32,766 bound values, 11 per row.
const CHUNK: usize = 500;

impl Store {
    /// Writes this instance's counts for these minutes, replacing what it wrote before for them
    /// (counts are cumulative per minute, so a rewrite is idempotent).
    pub async fn write_health(
        &self,
        instance: uuid::Uuid,
        rows: &[(BucketKey, MinuteCounts)],
    ) -> Result<(), DomainError> {
        for chunk in rows.chunks(CHUNK) {
            let models = chunk.iter().map(|(k, c)| hm::ActiveModel {
                instance_id: Set(instance),
                tenant_id: Set(k.tenant_id.0),
                mcp_server_id: Set(k.mcp_server_id.0),
                minute: Set(k.minute),
                source: Set(k.source.as_str().to_owned()),
                outcome: Set(k.outcome.clone()),
                calls: Set(i64::try_from(c.calls).unwrap_or(i64::MAX)),
                latency_ms_sum: Set(i64::try_from(c.latency_ms_sum).unwrap_or(i64::MAX)),
                histogram: Set(serde_json::to_string(&c.histogram.to_vec()).unwrap_or_else(|_| "[]".into())),
                last_at: Set(c.last_at.unwrap_or(k.minute)),
                last_detail: Set(c.last_detail.clone()),
            });
            hm::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::columns([
                        hm::Column::InstanceId,
                        hm::Column::TenantId,
                        hm::Column::McpServerId,
                        hm::Column::Minute,
                        hm::Column::Source,
                        hm::Column::Outcome,
                    ])
                    .update_columns([
                        hm::Column::Calls,
                        hm::Column::LatencyMsSum,
                        hm::Column::Histogram,
                        hm::Column::LastAt,
                        hm::Column::LastDetail,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Forgets counts of minutes before `before`.
    pub async fn prune_health(&self, before: DateTime<Utc>) -> Result<u64, DomainError> {
        Ok(hm::Entity::delete_many()
            .filter(hm::Column::Minute.lt(before))
            .exec(&self.db)
            .await
            .map_err(map_err)?
            .rows_affected)
    }
}

impl AdminStore<'_> {
    /// Every tenant's servers whose `config.endpoint` is `endpoint` (compared without a trailing
    /// slash), for the admin comparison. Tenants being deleted are left out.
    pub async fn servers_at_endpoint(&self, endpoint: &str) -> Result<Vec<McpServer>, DomainError> {
        let wanted = normalize_endpoint(endpoint);
        // The endpoint lives in the config JSON: narrow with a portable LIKE, then compare exactly.
        // Narrowed by the host (an explicit default port or other spellings of the same URL are
        // caught by the exact comparison below).
        let host = url::Url::parse(&wanted)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| wanted.clone());
        let pattern = format!("%{}%", host.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        // Lowercased on both sides: the host's case must not matter on Postgres either.
        let rows = mcp_servers::Entity::find()
            .filter(
                sea_orm::sea_query::Expr::expr(sea_orm::sea_query::Func::lower(sea_orm::sea_query::Expr::col(
                    mcp_servers::Column::Config,
                )))
                .like(sea_orm::sea_query::LikeExpr::new(pattern.to_lowercase()).escape('\\')),
            )
            .all(&self.0.db)
            .await
            .map_err(map_err)?;
        let live = self.live_tenants().await?;
        let mut out = Vec::new();
        for m in rows {
            if !live.contains(&m.tenant_id) {
                continue;
            }
            let server = super::mcp_servers::model_to_server(m)?;
            if normalize_endpoint(&server.config.endpoint) == wanted {
                out.push(server);
            }
        }
        Ok(out)
    }

    /// The comparison of every tenant's server at `endpoint` (see [`crate::compare`]): one row
    /// each, with the grants by status and the failures of the day since `since`.
    pub async fn compare_endpoint(
        &self,
        endpoint: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::compare::CompareRow>, DomainError> {
        let mut rows = Vec::new();
        for server in self.servers_at_endpoint(endpoint).await? {
            let tenant = self.get_tenant(server.tenant_id).await?;
            let store = self.0.tenant(server.tenant_id);
            let (by_status, grant_errors) = store.grant_summary(server.id, since).await?;
            let mut failures = store.failure_codes(server.id, since).await?;
            // The clients' own mistakes say nothing about the tenant's configuration.
            failures.retain(|code, _| crate::health::is_failure(code));
            for (code, n) in grant_errors {
                *failures.entry(code).or_default() += n;
            }
            rows.push(crate::compare::row(&tenant.slug, &server, by_status, failures));
        }
        rows.sort_by(|a, b| a.tenant_slug.cmp(&b.tenant_slug));
        crate::compare::mark_differences(&mut rows);
        Ok(rows)
    }

    async fn live_tenants(&self) -> Result<std::collections::HashSet<uuid::Uuid>, DomainError> {
        use super::entities::tenants;
        let ids: Vec<uuid::Uuid> = tenants::Entity::find()
            .select_only()
            .column(tenants::Column::Id)
            .filter(tenants::Column::DeletedAt.is_null())
            .into_tuple()
            .all(&self.0.db)
            .await
            .map_err(map_err)?;
        Ok(ids.into_iter().collect())
    }
}

impl TenantStore<'_> {
    /// Grants of `server` by status, and the codes of their last errors since `since`.
    pub async fn grant_summary(
        &self,
        server: McpServerId,
        since: DateTime<Utc>,
    ) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>), DomainError> {
        let rows: Vec<(String, Option<String>, DateTime<Utc>)> = self
            .find::<connections::Entity>()
            .select_only()
            .columns([connections::Column::Status, connections::Column::LastError, connections::Column::UpdatedAt])
            .filter(connections::Column::McpServerId.eq(server.0))
            .into_tuple()
            .all(&self.store.db)
            .await
            .map_err(map_err)?;
        let mut by_status = BTreeMap::new();
        let mut errors = BTreeMap::new();
        for (status, last_error, updated) in rows {
            *by_status.entry(status).or_default() += 1;
            if let Some(e) = last_error.and_then(|t| crate::connection::LastError::from_stored(&t, updated).ok())
                && e.at >= since
            {
                *errors.entry(e.code).or_default() += 1;
            }
        }
        Ok((by_status, errors))
    }

    /// The failure outcomes counted for `server` since `since`, summed over instances.
    pub async fn failure_codes(
        &self,
        server: McpServerId,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, u64>, DomainError> {
        let rows = self.health_buckets(server, since).await?;
        let mut out = BTreeMap::new();
        for b in rows.into_iter().filter(|b| b.key.outcome != crate::health::OK) {
            *out.entry(b.key.outcome).or_default() += b.counts.calls;
        }
        Ok(out)
    }

    /// `server`'s counted minutes since `since`, every instance's.
    pub async fn health_buckets(
        &self,
        server: McpServerId,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredBucket>, DomainError> {
        let rows = self
            .find::<hm::Entity>()
            .filter(hm::Column::McpServerId.eq(server.0))
            .filter(hm::Column::Minute.gte(crate::health::minute_of(since)))
            .all(&self.store.db)
            .await
            .map_err(map_err)?;
        rows.into_iter()
            .map(|m| {
                let histogram: Vec<u64> = serde_json::from_str(&m.histogram).map_err(json_err("health histogram"))?;
                let mut h = [0u64; BUCKETS];
                for (slot, n) in h.iter_mut().zip(histogram) {
                    *slot = n;
                }
                Ok(StoredBucket {
                    key: BucketKey {
                        tenant_id: self.tenant_id,
                        mcp_server_id: server,
                        minute: m.minute,
                        source: Source::parse(&m.source).unwrap_or(Source::Gateway),
                        outcome: m.outcome,
                    },
                    counts: MinuteCounts {
                        calls: u64::try_from(m.calls).unwrap_or(0),
                        latency_ms_sum: u64::try_from(m.latency_ms_sum).unwrap_or(0),
                        histogram: h,
                        last_at: Some(m.last_at),
                        last_detail: m.last_detail,
                    },
                })
            })
            .collect()
    }
}

/// An endpoint as compared across tenants: without a trailing slash, scheme and host lowercase.
#[must_use]
pub fn normalize_endpoint(endpoint: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(u) => u.as_str().trim_end_matches('/').to_owned(),
        Err(_) => trimmed.to_owned(),
    }
}
