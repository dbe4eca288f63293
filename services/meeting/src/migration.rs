//! Database migrations: the shared outbox tables first, then the meeting tables created
//! from the entities.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;
use trace_runtime::outbox::migration::{CreateOutbox, IndexOutboxByEntity};

use crate::entity::{
    agenda_item, attendee, confirmation, delay_request, dispatch, material, meeting, minutes,
    notice, overdue_mark, plan_revision, resolution, resolution_update,
};

/// Migrations of the meeting database, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateOutbox),
            Box::new(CreateMeetingTables),
            Box::new(IndexOutboxByEntity),
        ]
    }
}

/// Creates every meeting table and its indexes.
#[derive(Debug)]
pub struct CreateMeetingTables;

// The name is written by hand because DeriveMigrationName takes it from the file name, and
// the outbox migration's file is also called `migration`.
impl MigrationName for CreateMeetingTables {
    fn name(&self) -> &str {
        "m20261204_000200_create_meeting_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateMeetingTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, meeting::Entity).await?;
        create_table(manager, attendee::Entity).await?;
        create_table(manager, agenda_item::Entity).await?;
        create_table(manager, plan_revision::Entity).await?;
        create_table(manager, notice::Entity).await?;
        create_table(manager, material::Entity).await?;
        create_table(manager, minutes::Entity).await?;
        create_table(manager, dispatch::Entity).await?;
        create_table(manager, confirmation::Entity).await?;
        create_table(manager, resolution::Entity).await?;
        create_table(manager, resolution_update::Entity).await?;
        create_table(manager, delay_request::Entity).await?;
        create_table(manager, overdue_mark::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, overdue_mark::Entity).await?;
        drop_table(manager, delay_request::Entity).await?;
        drop_table(manager, resolution_update::Entity).await?;
        drop_table(manager, resolution::Entity).await?;
        drop_table(manager, confirmation::Entity).await?;
        drop_table(manager, dispatch::Entity).await?;
        drop_table(manager, minutes::Entity).await?;
        drop_table(manager, material::Entity).await?;
        drop_table(manager, notice::Entity).await?;
        drop_table(manager, plan_revision::Entity).await?;
        drop_table(manager, agenda_item::Entity).await?;
        drop_table(manager, attendee::Entity).await?;
        drop_table(manager, meeting::Entity).await
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
