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
