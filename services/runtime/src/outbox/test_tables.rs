//! The outbox tables alone, for tests of the relay and the receipt listener.

use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationTrait, MigratorTrait};

struct OutboxTables;

impl MigratorTrait for OutboxTables {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(super::migration::CreateOutbox)]
    }
}

/// Opens an SQLite file in `folder` with the outbox tables.
pub(crate) async fn database(folder: &std::path::Path) -> DatabaseConnection {
    let url = format!("sqlite://{}?mode=rwc", folder.join("outbox.db").display());
    crate::db::connect_and_migrate::<OutboxTables>(&url)
        .await
        .expect("outbox database")
}
