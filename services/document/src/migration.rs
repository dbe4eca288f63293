//! Database migrations: the shared outbox tables first, then the document tables created
//! from the entities.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;
use trace_runtime::outbox::migration::{CreateOutbox, IndexOutboxByEntity};

use crate::entity::{
    access_request, agreement, backup, borrowing, document, file_number_counter, read, review,
    revision,
};

/// Migrations of the document database, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateOutbox),
            Box::new(CreateDocumentTables),
            Box::new(CreateAccessTables),
            Box::new(IndexOutboxByEntity),
        ]
    }
}

/// Creates every document table and its indexes.
#[derive(Debug)]
pub struct CreateDocumentTables;

// The name is written by hand because DeriveMigrationName takes it from the file name, and
// the outbox migration's file is also called `migration`.
impl MigrationName for CreateDocumentTables {
    fn name(&self) -> &str {
        "m20261204_000100_create_document_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateDocumentTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, document::Entity).await?;
        create_table(manager, revision::Entity).await?;
        create_table(manager, review::Entity).await?;
        create_table(manager, backup::Entity).await?;
        create_table(manager, read::Entity).await?;
        create_table(manager, borrowing::Entity).await?;
        create_table(manager, file_number_counter::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, file_number_counter::Entity).await?;
        drop_table(manager, borrowing::Entity).await?;
        drop_table(manager, read::Entity).await?;
        drop_table(manager, backup::Entity).await?;
        drop_table(manager, review::Entity).await?;
        drop_table(manager, revision::Entity).await?;
        drop_table(manager, document::Entity).await
    }
}

/// Creates the access request and agreement tables.
#[derive(Debug)]
pub struct CreateAccessTables;

impl MigrationName for CreateAccessTables {
    fn name(&self) -> &str {
        "m20261204_000200_create_access_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAccessTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, access_request::Entity).await?;
        create_table(manager, agreement::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, agreement::Entity).await?;
        drop_table(manager, access_request::Entity).await
    }
}

async fn create_table<E: EntityTrait>(manager: &SchemaManager<'_>, entity: E) -> Result<(), DbErr> {
    let schema = Schema::new(manager.get_database_backend());
    let table = schema
        .create_table_from_entity(entity)
        .if_not_exists()
        .to_owned();
    manager.create_table(table).await?;

    for mut index in schema.create_index_from_entity(entity) {
        manager
            .create_index(index.if_not_exists().to_owned())
            .await?;
    }
    Ok(())
}

async fn drop_table<E: EntityTrait>(manager: &SchemaManager<'_>, entity: E) -> Result<(), DbErr> {
    manager
        .drop_table(Table::drop().table(entity).to_owned())
        .await
}
