//! The migrations run on an empty database of the backend under test, and are idempotent.

use sea_orm_migration::MigratorTrait as _;
use switchboard_domain::crypto::Envelope;
use switchboard_domain::store::StoreOptions;
use switchboard_migrations::Migrator;

use crate::helpers::fresh_database;

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_roll_back() {
    let (url, _db) = fresh_database().await;
    let envelope = Envelope::from_bytes(&[9u8; 32]).expect("key");
    // One connection: every step sees the schema the previous one left (a pooled SQLite
    // connection can hold an older read snapshot).
    let options = StoreOptions { max_connections: 1, ..StoreOptions::default() };
    let store = switchboard_api::bootstrap::open_store(&url, envelope, &options).await.expect("open");
    let db = store.connection();
    assert_eq!(Migrator::get_pending_migrations(db).await.expect("pending").len(), Migrator::migrations().len());
    switchboard_api::bootstrap::migrate(&store).await.expect("up");
    assert!(Migrator::get_pending_migrations(db).await.expect("pending").is_empty());
    switchboard_api::bootstrap::migrate(&store).await.expect("up again is a no-op");
    // The schema works: a tenant round-trips.
    assert_eq!(store.admin().count_tenants().await.expect("count"), 0);
    // And comes down cleanly.
    Migrator::down(db, None).await.expect("down");
    assert_eq!(Migrator::get_pending_migrations(db).await.expect("pending").len(), Migrator::migrations().len());
    Migrator::up(db, None).await.expect("up after down");
}

/// Agents that existed before agents had slugs get one from their name, numbered in creation
/// order within each tenant, and the slugs are unique per tenant from then on.
#[tokio::test]
async fn existing_agents_get_slugs_from_their_names() {
    use sea_orm_migration::sea_orm::{ConnectionTrait as _, Statement};
    let (url, _db) = fresh_database().await;
    let envelope = Envelope::from_bytes(&[9u8; 32]).expect("key");
    let options = StoreOptions { max_connections: 1, ..StoreOptions::default() };
    let store = switchboard_api::bootstrap::open_store(&url, envelope, &options).await.expect("open");
    let db = store.connection();
    let before_gateway =
        Migrator::migrations().iter().position(|m| m.name() == "m0012_gateway").expect("the gateway migration");
    Migrator::up(db, Some(u32::try_from(before_gateway).expect("count"))).await.expect("up to m0011");
    let backend = db.get_database_backend();
    let (t1, t2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (t, slug) in [(t1, "one"), (t2, "two")] {
        db.execute(Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                    "INSERT INTO tenants (id, name, slug, created_at) VALUES ($1, $2, $3, CURRENT_TIMESTAMP)"
                }
                _ => "INSERT INTO tenants (id, name, slug, created_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP)",
            },
            [t.into(), slug.into(), slug.into()],
        ))
        .await
        .expect("tenant");
    }
    let agents = [
        (t1, "Support Bot", "2026-01-01T00:00:00Z"),
        (t1, "support bot", "2026-01-02T00:00:00Z"),
        (t1, "日本", "2026-01-03T00:00:00Z"),
        (t2, "Support Bot", "2026-01-04T00:00:00Z"),
    ];
    let mut ids = Vec::new();
    for (tenant, name, at) in agents {
        let id = uuid::Uuid::now_v7();
        ids.push(id);
        let at = chrono::DateTime::parse_from_rfc3339(at).expect("time").with_timezone(&chrono::Utc);
        db.execute(Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                    "INSERT INTO agents (id, tenant_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)"
                }
                _ => "INSERT INTO agents (id, tenant_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            },
            match backend {
                sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                    vec![id.into(), tenant.into(), name.into(), at.into()]
                }
                _ => vec![id.into(), tenant.into(), name.into(), at.into(), at.into()],
            },
        ))
        .await
        .expect("agent");
    }
    Migrator::up(db, None).await.expect("m0012");
    let mut slugs = Vec::new();
    for id in &ids {
        let agent = store.tenant(if slugs.len() < 3 { t1.into() } else { t2.into() }).get_agent((*id).into()).await;
        slugs.push(agent.expect("agent").slug);
    }
    assert_eq!(slugs, ["support-bot", "support-bot-2", "agent", "support-bot"]);
}
