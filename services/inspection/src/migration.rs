//! Database migrations: the shared outbox tables first, then the inspection tables created
//! from the entities, then the confidentiality columns, the shared access approval tables and
//! the level and entity of processed events added since.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;
use trace_proto::common::v1::Confidentiality;
use trace_runtime::access_approval::migration::CreateAccessApprovals;
use trace_runtime::outbox::migration::{CreateOutbox, IndexOutboxByEntity};

use crate::entity::{
    cursor, distribution, finding, fulfilment, inspection, obligation, overdue_report, plan,
    processed_event,
};

/// Migrations of the inspection database, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateOutbox),
            Box::new(CreateInspectionTables),
            Box::new(IndexOutboxByEntity),
            Box::new(AddConfidentiality),
            Box::new(CreateAccessApprovals),
            Box::new(AddReportConfidentiality),
            Box::new(AddProcessedEventLevel),
        ]
    }
}

/// Creates every inspection table and its indexes.
#[derive(Debug)]
pub struct CreateInspectionTables;

// The name is written by hand because DeriveMigrationName takes it from the file name, and
// the outbox migration's file is also called `migration`.
impl MigrationName for CreateInspectionTables {
    fn name(&self) -> &str {
        "m20261204_000500_create_inspection"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateInspectionTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, plan::Entity).await?;
        create_table(manager, inspection::Entity).await?;
        create_table(manager, finding::Entity).await?;
        create_table(manager, distribution::Entity).await?;
        create_table(manager, overdue_report::Entity).await?;
        create_table(manager, processed_event::Entity).await?;
        create_table(manager, obligation::Entity).await?;
        create_table(manager, fulfilment::Entity).await?;
        create_table(manager, cursor::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, cursor::Entity).await?;
        drop_table(manager, fulfilment::Entity).await?;
        drop_table(manager, obligation::Entity).await?;
        drop_table(manager, processed_event::Entity).await?;
        drop_table(manager, overdue_report::Entity).await?;
        drop_table(manager, distribution::Entity).await?;
        drop_table(manager, finding::Entity).await?;
        drop_table(manager, inspection::Entity).await?;
        drop_table(manager, plan::Entity).await
    }
}

/// Adds the confidentiality level to `findings` and `obligations`. Rows stored before are
/// INTERNAL, the level their text and events had.
#[derive(Debug)]
pub struct AddConfidentiality;

impl MigrationName for AddConfidentiality {
    fn name(&self) -> &str {
        "m20261205_000501_add_finding_confidentiality"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddConfidentiality {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after the column joined the entities already has it, because
        // `CreateInspectionTables` builds the tables from the entities.
        if !manager.has_column("findings", "confidentiality").await? {
            add_level(manager, finding::Entity, finding::Column::Confidentiality).await?;
        }
        if !manager.has_column("obligations", "confidentiality").await? {
            add_level(
                manager,
                obligation::Entity,
                obligation::Column::Confidentiality,
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_column(
            manager,
            obligation::Entity,
            obligation::Column::Confidentiality,
        )
        .await?;
        drop_column(manager, finding::Entity, finding::Column::Confidentiality).await
    }
}

/// Adds the level of the report to `inspections`. Reports stored before are INTERNAL, the
/// level their text and events had.
#[derive(Debug)]
pub struct AddReportConfidentiality;

impl MigrationName for AddReportConfidentiality {
    fn name(&self) -> &str {
        "m20261205_000502_add_report_confidentiality"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddReportConfidentiality {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Databases created after the column joined the entity already have it.
        if manager
            .has_column("inspections", "report_confidentiality")
            .await?
        {
            return Ok(());
        }
        add_level(
            manager,
            inspection::Entity,
            inspection::Column::ReportConfidentiality,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_column(
            manager,
            inspection::Entity,
            inspection::Column::ReportConfidentiality,
        )
        .await
    }
}

/// Adds the envelope level and entity to `processed_events`, with indexes for the lookups of
/// `RecordFinding` by stream sequence and by entity. Rows stored before are INTERNAL with an
/// empty entity.
// NOTE: an event consumed before this migration keeps INTERNAL even when its envelope was
// CONFIDENTIAL or SECRET, so it raises the level of no recorded finding above INTERNAL.
#[derive(Debug)]
pub struct AddProcessedEventLevel;

const PROCESSED_SEQUENCE_INDEX: &str = "idx_processed_events_stream_sequence";
const PROCESSED_ENTITY_INDEX: &str = "idx_processed_events_entity";

impl MigrationName for AddProcessedEventLevel {
    fn name(&self) -> &str {
        "m20261205_000503_add_processed_event_level"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddProcessedEventLevel {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Databases created after the columns joined the entity already have them.
        if !manager
            .has_column("processed_events", "confidentiality")
            .await?
        {
            add_level(
                manager,
                processed_event::Entity,
                processed_event::Column::Confidentiality,
            )
            .await?;
            add_text(
                manager,
                processed_event::Entity,
                processed_event::Column::EntityType,
            )
            .await?;
            add_text(
                manager,
                processed_event::Entity,
                processed_event::Column::EntityId,
            )
            .await?;
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(PROCESSED_SEQUENCE_INDEX)
                    .table(processed_event::Entity)
                    .col(processed_event::Column::StreamSequence)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(PROCESSED_ENTITY_INDEX)
                    .table(processed_event::Entity)
                    .col(processed_event::Column::EntityType)
                    .col(processed_event::Column::EntityId)
                    .col(processed_event::Column::Confidentiality)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in [PROCESSED_ENTITY_INDEX, PROCESSED_SEQUENCE_INDEX] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(processed_event::Entity)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            processed_event::Column::EntityId,
            processed_event::Column::EntityType,
            processed_event::Column::Confidentiality,
        ] {
            drop_column(manager, processed_event::Entity, column).await?;
        }
        Ok(())
    }
}

async fn add_level<E: EntityTrait, C: IntoIden>(
    manager: &SchemaManager<'_>,
    entity: E,
    column: C,
) -> Result<(), DbErr> {
    let mut definition = ColumnDef::new(column);
    definition
        .integer()
        .not_null()
        .default(Confidentiality::Internal as i32);
    add_column(manager, entity, &mut definition).await
}

/// Adds a text column whose rows stored before are empty.
async fn add_text<E: EntityTrait, C: IntoIden>(
    manager: &SchemaManager<'_>,
    entity: E,
    column: C,
) -> Result<(), DbErr> {
    let mut definition = ColumnDef::new(column);
    definition.string().not_null().default("");
    add_column(manager, entity, &mut definition).await
}

async fn add_column<E: EntityTrait>(
    manager: &SchemaManager<'_>,
    entity: E,
    definition: &mut ColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(entity)
                .add_column(definition)
                .to_owned(),
        )
        .await
}

async fn drop_column<E: EntityTrait, C: IntoIden>(
    manager: &SchemaManager<'_>,
    entity: E,
    column: C,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(entity).drop_column(column).to_owned())
        .await
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
