//! Persistence: the sea-orm store behind every model operation, for SQLite and Postgres alike.
//!
//! Tenant data is reachable only through [`Store::tenant`], which returns a [`TenantStore`] bound to
//! one tenant: every query it issues filters on that tenant, so another tenant's id is simply not
//! found. Admin operations (tenants and their keys) live on [`Store`] itself.
//!
//! Database errors are mapped to [`DomainError`] here, at the edge; nothing above sees `DbErr`.

mod agents;
mod audit;
mod connections;
pub(crate) mod entities;
mod erasure;
mod events;
mod health;
mod idempotency;
mod issuances;
mod jobs;
mod mcp_servers;
mod oauth_clients;
mod rediscovery;
mod refresh;
mod revocation;
mod scoped;
mod settings;
mod sign_in;
mod tenants;
#[cfg(feature = "test-support")]
pub mod testing;
mod tickets;
mod webhooks;

use std::time::Duration;

use sea_orm::sqlx::sqlite as sqlx_sqlite;
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbErr, SqlErr, Statement};

pub use connections::ConnectionFilter;
pub use erasure::{PurgeStep, TenantDeletion, UserDeletion};
pub use health::normalize_endpoint;
pub use idempotency::{Begin, IdempotencyKey};
pub use jobs::{ClaimedJob, JobEnd, JobSummary};
pub use rediscovery::REDISCOVER_EVERY;
pub use refresh::{DueRefresh, ImportedGrant, RefreshFailure, RefreshRow};
pub use sign_in::NewGatewayGrant;
pub use webhooks::{StoredEvent, Webhook};

use crate::crypto::Envelope;
use crate::{DomainError, TenantId};

/// Which database a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Postgres for `postgres://`/`postgresql://` URLs, SQLite for `sqlite:` ones.
    pub fn from_url(url: &str) -> Result<Self, DomainError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(DomainError::invalid(
                "database_url",
                "invalid",
                "the database URL must start with sqlite: or postgres://",
            ))
        }
    }
}

/// Pool settings; the defaults suit one `serve` process.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Postgres only: statements running longer are cancelled by the server.
    pub statement_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// The store: a connection pool and the envelope that seals secrets.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    envelope: Envelope,
    backend: Backend,
    /// SQLite allows one writer at a time, and a deferred transaction that reads before it writes
    /// fails with `SQLITE_BUSY` (no waiting) when another writer got in between. Write transactions
    /// therefore take this lock first; Postgres needs none.
    writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// Kept to open more pools on the same database ([`Store::another_pool`]).
    url: std::sync::Arc<str>,
    options: StoreOptions,
}

impl Store {
    /// Connects to `url`. SQLite runs in WAL mode with a busy timeout so that readers never wait
    /// for the writer; Postgres gets a statement timeout.
    pub async fn connect(url: &str, envelope: Envelope, options: &StoreOptions) -> Result<Self, DomainError> {
        let backend = Backend::from_url(url)?;
        let db = Self::pool(url, backend, options).await?;
        let writer = (backend == Backend::Sqlite).then(std::sync::Arc::default);
        Ok(Self { db, envelope, backend, writer, url: url.into(), options: options.clone() })
    }

    /// A second pool on the same database, sharing the envelope and (on SQLite) the writer lock.
    /// Each HTTP worker thread opens its own, so that a connection's socket is driven by the
    /// runtime that owns it instead of waking another thread for every round trip.
    pub async fn another_pool(&self) -> Result<Self, DomainError> {
        let db = Self::pool(&self.url, self.backend, &self.options).await?;
        Ok(Self { db, ..self.clone() })
    }

    async fn pool(url: &str, backend: Backend, options: &StoreOptions) -> Result<DatabaseConnection, DomainError> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            .sqlx_logging(false);
        if backend == Backend::Sqlite {
            // One writer at a time is SQLite's nature; more connections only add lock contention.
            opts.max_connections(options.max_connections.min(8));
        }
        // Per-connection settings go into the connect options, so every pooled connection has them.
        match backend {
            Backend::Sqlite => {
                opts.map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(sqlx_sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx_sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                });
            }
            Backend::Postgres => {
                let ms = options.statement_timeout.as_millis().to_string();
                opts.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.as_str())]));
            }
        }
        Database::connect(opts).await.map_err(map_err)
    }

    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection pool itself, for tests and tools that inspect or arrange rows directly.
    /// Application code goes through the store's methods.
    #[must_use]
    pub fn database(&self) -> &DatabaseConnection {
        &self.db
    }

    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    #[must_use]
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The operations on one tenant's data.
    #[must_use]
    pub fn tenant(&self, tenant_id: TenantId) -> TenantStore<'_> {
        TenantStore { store: self, tenant_id }
    }

    /// The platform admin's view: tenants, their API keys, their deletion. Spans tenants.
    #[must_use]
    pub fn admin(&self) -> AdminStore<'_> {
        AdminStore(self)
    }

    /// The workers' view: the job queue, due refreshes, housekeeping sweeps. Spans tenants.
    #[must_use]
    pub fn queue(&self) -> QueueStore<'_> {
        QueueStore(self)
    }

    /// Begins a write transaction (serialised per process on SQLite). Keep the guard until the
    /// transaction is committed or dropped.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<(Option<tokio::sync::OwnedMutexGuard<()>>, sea_orm::DatabaseTransaction), DomainError> {
        let guard = match &self.writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let txn = sea_orm::TransactionTrait::begin(&self.db).await.map_err(map_err)?;
        if self.backend == Backend::Sqlite {
            // Take SQLite's write lock before the first read (what `BEGIN IMMEDIATE` would do):
            // a transaction that read first and writes after another connection's autocommit
            // write fails at once with SQLITE_BUSY_SNAPSHOT ("database is locked", code 517) —
            // the lock above only orders this process's transactions. A write that matches no
            // row still starts a write transaction, and waits out the busy timeout like any.
            sea_orm::ConnectionTrait::execute_unprepared(&txn, "UPDATE tenants SET name = name WHERE 1 = 0")
                .await
                .map_err(map_err)?;
        }
        Ok((guard, txn))
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DomainError> {
        self.db.ping().await.map_err(map_err)
    }

    /// The database's clock, read in one round trip: the time that leases, due dates and token
    /// expiries are measured against, so that processes whose host clocks disagree still agree
    /// on them (see [`crate::clock`]).
    pub async fn database_now(&self) -> Result<crate::clock::Reading, DomainError> {
        let sql = match self.backend {
            Backend::Postgres => "SELECT extract(epoch FROM clock_timestamp())::float8 AS now",
            Backend::Sqlite => "SELECT (julianday('now') - 2440587.5) * 86400.0 AS now",
        };
        let row = self
            .db
            .query_one(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .map_err(map_err)?
            .ok_or_else(|| DomainError::internal("the database clock gave no answer"))?;
        let secs: f64 = row.try_get("", "now").map_err(map_err)?;
        #[expect(clippy::cast_possible_truncation, reason = "epoch microseconds fit an i64 for 290,000 years")]
        let micros = (secs * 1e6).round() as i64;
        let at = chrono::DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| DomainError::internal(format!("the database clock reads {secs}, not a time")))?;
        Ok(crate::clock::Reading::new(at))
    }
}

/// The platform admin's part of the store ([`Store::admin`]).
#[derive(Clone, Copy, Debug)]
pub struct AdminStore<'a>(&'a Store);

/// The workers' part of the store ([`Store::queue`]).
#[derive(Clone, Copy, Debug)]
pub struct QueueStore<'a>(&'a Store);

impl std::ops::Deref for AdminStore<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.0
    }
}

impl std::ops::Deref for QueueStore<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.0
    }
}

/// One tenant's view of the store.
#[derive(Clone, Copy, Debug)]
pub struct TenantStore<'a> {
    store: &'a Store,
    tenant_id: TenantId,
}

impl TenantStore<'_> {
    #[must_use]
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

/// Maps a database error to the domain's, keeping SQL text out of anything a client sees.
pub(crate) fn map_err(err: DbErr) -> DomainError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return DomainError::Conflict {
            code: crate::ErrorCode::Conflict,
            message: "a resource with these values already exists".into(),
        };
    }
    if is_unreachable(&err) {
        return DomainError::Unavailable(format!("the database is unreachable: {err}"));
    }
    DomainError::internal_from("database error", err)
}

/// Errors that say the database could not be reached or answered too late — a restart, a
/// network cut, a full pool, a statement cancelled by its timeout — rather than that the
/// request was wrong: the caller may retry.
fn is_unreachable(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match sqlx {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => true,
        // Postgres: shutting down (57P01-57P03), a statement timeout (57014), too many connections (53300).
        Sqlx::Database(db) => {
            db.code().is_some_and(|c| matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "57014" | "53300"))
        }
        _ => false,
    }
}

pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

pub(crate) fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> DomainError + '_ {
    move |e| DomainError::internal_from(format!("stored {what} is not valid JSON"), e)
}

#[cfg(test)]
mod sqlite_write_tests {
    use std::time::Duration;

    use sea_orm::{ConnectionTrait as _, EntityTrait as _};
    use switchboard_migrations::{Migrator, MigratorTrait as _};

    use super::*;

    /// A write transaction that reads first, while another connection — another process's
    /// pool, which this process's writer lock does not order — commits a write, still commits.
    #[tokio::test]
    async fn a_transaction_that_reads_first_survives_another_connections_write()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("sb-write-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let envelope = Envelope::from_bytes(&[9u8; 32])?;
        let options = StoreOptions::default();
        let ours = Store::connect(&url, envelope.clone(), &options).await?;
        Migrator::up(ours.connection(), None).await?;
        let theirs = Store::connect(&url, envelope, &options).await?;
        let spec = crate::tenant::TenantSpec { name: "one".into(), slug: None };
        ours.admin().create_tenant(&crate::tenant::Actor::System, spec).await?;

        let (_lock, txn) = ours.begin_write().await?;
        entities::tenants::Entity::find().all(&txn).await?;
        // Their autocommit write either waits for our commit (our write lock is held) or, were it
        // not, would commit now and leave our snapshot stale.
        let other = tokio::spawn(async move {
            theirs.connection().execute_unprepared("UPDATE tenants SET name = name || '!'").await.map(|_| ())
        });
        let _ = tokio::time::timeout(Duration::from_millis(300), async {
            while !other.is_finished() {
                tokio::task::yield_now().await
            }
        })
        .await;
        txn.execute_unprepared("UPDATE tenants SET name = name").await?;
        txn.commit().await?;
        other.await??;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
