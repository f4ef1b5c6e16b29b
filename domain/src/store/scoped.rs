//! The way into a tenant's tables: every select, update and delete a [`TenantStore`] runs starts
//! from [`TenantStore::find`], [`TenantStore::find_by_id`], [`TenantStore::update`] or
//! [`TenantStore::delete`], which are already filtered to its tenant — so a method cannot forget
//! the filter, and a write cannot depend on a scoped read having run first. The test below holds
//! every `impl TenantStore` block of the store to it; cross-tenant work (the admin plane, the
//! queue, the refresh scheduler) lives on [`Store`](super::Store) and says so.

use sea_orm::{ColumnTrait as _, DeleteMany, EntityTrait, PrimaryKeyTrait, QueryFilter as _, Select, UpdateMany};

use super::TenantStore;
use super::entities;

/// A table whose rows belong to one tenant, by its `tenant_id` column.
pub(crate) trait TenantOwned: EntityTrait {
    fn tenant_column() -> Self::Column;
}

macro_rules! tenant_owned {
    ($($table:ident),* $(,)?) => {
        $(impl TenantOwned for entities::$table::Entity {
            fn tenant_column() -> Self::Column {
                entities::$table::Column::TenantId
            }
        })*
    };
}

tenant_owned!(
    api_keys,
    mcp_servers,
    agents,
    agent_mcp_servers,
    audit_events,
    oauth_clients,
    tenant_signing_keys,
    revoked_tickets,
    connections,
    connection_events,
    jobs,
    tenant_webhooks,
    auth_flows,
    issuances,
    tenant_settings,
    health_minutes,
    identity_providers,
    gateway_clients,
    gateway_grants,
    gateway_refresh_tokens,
);

/// The tenant's own row: its id is its tenant column.
impl TenantOwned for entities::tenants::Entity {
    fn tenant_column() -> Self::Column {
        entities::tenants::Column::Id
    }
}

impl TenantStore<'_> {
    /// This tenant's rows of `E`.
    pub(super) fn find<E: TenantOwned>(&self) -> Select<E> {
        E::find().filter(E::tenant_column().eq(self.tenant_id.0))
    }

    /// This tenant's row of `E` with this primary key (none when it is another tenant's).
    pub(super) fn find_by_id<E, K>(&self, id: K) -> Select<E>
    where
        E: TenantOwned,
        K: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
    {
        E::find_by_id(id).filter(E::tenant_column().eq(self.tenant_id.0))
    }

    /// An update of this tenant's rows of `E` (narrowed further by the caller).
    pub(super) fn update<E: TenantOwned>(&self) -> UpdateMany<E> {
        E::update_many().filter(E::tenant_column().eq(self.tenant_id.0))
    }

    /// A delete of this tenant's rows of `E` (narrowed further by the caller).
    pub(super) fn delete<E: TenantOwned>(&self) -> DeleteMany<E> {
        E::delete_many().filter(E::tenant_column().eq(self.tenant_id.0))
    }
}

#[cfg(test)]
mod tests {
    /// Every store module, as compiled.
    const SOURCES: &[(&str, &str)] = &[
        ("agents.rs", include_str!("agents.rs")),
        ("audit.rs", include_str!("audit.rs")),
        ("connections.rs", include_str!("connections.rs")),
        ("erasure.rs", include_str!("erasure.rs")),
        ("events.rs", include_str!("events.rs")),
        ("health.rs", include_str!("health.rs")),
        ("idempotency.rs", include_str!("idempotency.rs")),
        ("issuances.rs", include_str!("issuances.rs")),
        ("jobs.rs", include_str!("jobs.rs")),
        ("mcp_servers.rs", include_str!("mcp_servers.rs")),
        ("oauth_clients.rs", include_str!("oauth_clients.rs")),
        ("rediscovery.rs", include_str!("rediscovery.rs")),
        ("refresh.rs", include_str!("refresh.rs")),
        ("revocation.rs", include_str!("revocation.rs")),
        ("settings.rs", include_str!("settings.rs")),
        ("sign_in.rs", include_str!("sign_in.rs")),
        ("tenants.rs", include_str!("tenants.rs")),
        ("tickets.rs", include_str!("tickets.rs")),
        ("webhooks.rs", include_str!("webhooks.rs")),
    ];

    /// The bodies of the `impl TenantStore` blocks of `source` (braces matched; the store's
    /// strings hold balanced braces only).
    fn tenant_impls(source: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find("impl TenantStore<'_> {") {
            let body = rest.get(at..).unwrap_or_default();
            let mut depth = 0usize;
            let mut end = body.len();
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            out.push(body.get(..end).unwrap_or_default());
            rest = body.get(end..).unwrap_or_default();
        }
        out
    }

    #[test]
    fn tenant_store_methods_reach_tables_only_through_the_scoped_constructors() {
        let unscoped = [
            "Entity::find(",
            "Entity::find_by_id(",
            "Entity::update_many(",
            "Entity::delete_many(",
            "Entity::delete_by_id(",
            "::find_by_statement(",
        ];
        let mut found = Vec::new();
        for (file, source) in SOURCES {
            for body in tenant_impls(source) {
                for line in body.lines() {
                    if unscoped.iter().any(|u| line.contains(u)) {
                        found.push(format!("{file}: {}", line.trim()));
                    }
                }
            }
        }
        assert!(found.is_empty(), "unscoped table access in TenantStore methods:\n{}", found.join("\n"));
        assert!(SOURCES.iter().any(|(_, s)| !tenant_impls(s).is_empty()), "the scan found no impl blocks");
        // Every module of the store is scanned (a new one joins the list, or this fails).
        for line in include_str!("mod.rs").lines() {
            // Module declarations of files only (`mod x;`), not inline test modules.
            let Some(name) = line.trim().strip_suffix(';').and_then(|l| l.rsplit_once("mod ")).map(|(_, n)| n) else {
                continue;
            };
            let file = format!("{name}.rs");
            let exempt = ["entities.rs", "scoped.rs", "testing.rs"];
            assert!(
                exempt.contains(&file.as_str()) || SOURCES.iter().any(|(f, _)| *f == file),
                "store module {file} is not scanned: add it to SOURCES"
            );
        }
    }
}
