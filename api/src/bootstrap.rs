//! Start-up steps shared by the subcommands: open the store, migrate, create the first tenant.

use std::path::Path;

use anyhow::Context as _;
use sea_orm_migration::MigratorTrait as _;
use switchboard_domain::crypto::Envelope;
use switchboard_domain::store::{Backend, Store, StoreOptions};
use switchboard_domain::tenant::{Actor, TenantSpec};
use switchboard_migrations::Migrator;

/// Where the first tenant's key is written on a fresh embedded install.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-api-key";

/// Connects to the database; creates the SQLite file's directory first.
pub async fn open_store(database_url: &str, envelope: Envelope, options: &StoreOptions) -> anyhow::Result<Store> {
    if Backend::from_url(database_url)? == Backend::Sqlite
        && let Some(dir) = sqlite_dir(database_url)
    {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Store::connect(database_url, envelope, options).await.map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))
}

fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf)
}

/// Applies every pending migration.
pub async fn migrate(store: &Store) -> anyhow::Result<()> {
    let pending =
        Migrator::get_pending_migrations(store.connection()).await.context("reading the migration state")?.len();
    Migrator::up(store.connection(), None).await.context("applying migrations")?;
    if pending > 0 {
        tracing::info!(applied = pending, "database migrated");
    }
    Ok(())
}

/// On the first start of an empty embedded database, creates a `default` tenant and writes its
/// API key to `<data_dir>/bootstrap-api-key` (mode 0600), so a newcomer can call the API at once.
pub async fn default_tenant(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    if store.backend() != Backend::Sqlite || store.admin().count_tenants().await? > 0 {
        return Ok(());
    }
    let path = data_dir.join(BOOTSTRAP_KEY_FILE);
    let (tenant, key) = store
        .admin()
        .create_tenant(&Actor::System, TenantSpec { name: "default".into(), slug: Some("default".into()) })
        .await?;
    let _ = std::fs::remove_file(&path);
    crate::config::write_private(&path, format!("{}\n", key.plaintext.expose()).as_bytes())?;
    tracing::info!(tenant.id = %tenant.id, key_file = %path.display(), "created tenant `default`; its API key is in {}", path.display());
    Ok(())
}
