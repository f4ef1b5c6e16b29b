//! The schema, as one migration set that runs unchanged on SQLite and Postgres.
//!
//! Portable by construction: ids are UUIDs, JSON is stored as text, secrets as bytes, times as
//! timestamps with time zone; nothing here names a dialect.

pub use sea_orm_migration::prelude::*;

mod m0001_foundation;
mod m0002_oauth_clients;
mod m0003_session_tickets;
mod m0004_connections;
mod m0005_issuances;
mod m0006_tenant_settings;
mod m0007_refresh;
mod m0008_jobs;
mod m0009_webhooks;
mod m0010_tenant_deletion;
mod m0011_rediscovery;
mod m0012_gateway;
mod m0013_health;
mod m0014_gateway_oauth;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_foundation::Migration),
            Box::new(m0002_oauth_clients::Migration),
            Box::new(m0003_session_tickets::Migration),
            Box::new(m0004_connections::Migration),
            Box::new(m0005_issuances::Migration),
            Box::new(m0006_tenant_settings::Migration),
            Box::new(m0007_refresh::Migration),
            Box::new(m0008_jobs::Migration),
            Box::new(m0009_webhooks::Migration),
            Box::new(m0010_tenant_deletion::Migration),
            Box::new(m0011_rediscovery::Migration),
            Box::new(m0012_gateway::Migration),
            Box::new(m0013_health::Migration),
            Box::new(m0014_gateway_oauth::Migration),
        ]
    }
}
