//! Database migrations: the shared outbox tables first, then the worklog tables created from
//! the entities.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;
use trace_proto::common::v1::Confidentiality;
use trace_runtime::access_approval::migration::CreateAccessApprovals;
use trace_runtime::outbox::migration::{CreateOutbox, IndexOutboxByEntity};

use crate::entity::{
    communication, communication_attachment, communication_document, communication_participant,
    report, report_comment, report_decision, report_figure, report_round,
};

/// Migrations of the worklog database, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateOutbox),
            Box::new(CreateWorklogTables),
            Box::new(IndexOutboxByEntity),
            Box::new(AddReportConfidentiality),
            Box::new(CreateAccessApprovals),
        ]
    }
}

/// Creates every worklog table and its indexes.
#[derive(Debug)]
pub struct CreateWorklogTables;

// The name is written by hand because DeriveMigrationName takes it from the file name, which
// other crates' migration files share. Names must be unique per database.
impl MigrationName for CreateWorklogTables {
    fn name(&self) -> &str {
        "m20261204_000400_create_worklog"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateWorklogTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, report::Entity).await?;
        create_table(manager, report_round::Entity).await?;
        create_table(manager, report_figure::Entity).await?;
        create_table(manager, report_comment::Entity).await?;
        create_table(manager, report_decision::Entity).await?;
        create_table(manager, communication::Entity).await?;
        create_table(manager, communication_participant::Entity).await?;
        create_table(manager, communication_attachment::Entity).await?;
        create_table(manager, communication_document::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, communication_document::Entity).await?;
        drop_table(manager, communication_attachment::Entity).await?;
        drop_table(manager, communication_participant::Entity).await?;
        drop_table(manager, communication::Entity).await?;
        drop_table(manager, report_decision::Entity).await?;
        drop_table(manager, report_comment::Entity).await?;
        drop_table(manager, report_figure::Entity).await?;
        drop_table(manager, report_round::Entity).await?;
        drop_table(manager, report::Entity).await
    }
}

/// Adds `reports.confidentiality`; reports stored before it are INTERNAL.
#[derive(Debug)]
pub struct AddReportConfidentiality;

impl MigrationName for AddReportConfidentiality {
    fn name(&self) -> &str {
        "m20261205_000401_add_report_confidentiality"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddReportConfidentiality {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after this column joined the entity already has it, because
        // `CreateWorklogTables` builds the table from the entity.
        if manager.has_column("reports", "confidentiality").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(report::Entity)
                    .add_column(
                        ColumnDef::new(report::Column::Confidentiality)
                            .integer()
                            .not_null()
                            .default(Confidentiality::Internal as i32),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(report::Entity)
                    .drop_column(report::Column::Confidentiality)
                    .to_owned(),
            )
            .await
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, EntityTrait, Statement};

    use super::*;

    /// Inserts a report the way the first worklog schema stored it, without a level.
    const OLD_REPORT: &str = "INSERT INTO reports (id, author_id, kind, period_start, \
        period_end, department, supervisor_id, state, round, submitted_at, \
        round_submitted_at, deadline_at, late, late_minutes, day_kind, entity_version) \
        VALUES ('0190a000-0000-7000-8000-000000000001', 'zhang.min', 'DAILY', 20260302, \
        20260302, 'sales', 'chen.hua', 'SUBMITTED', 1, 0, 0, NULL, 0, 0, NULL, 1)";

    #[tokio::test]
    async fn stored_reports_become_internal() {
        let folder = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            folder.path().join("worklog.db").display()
        );
        let db = trace_runtime::db::connect(&url).await.unwrap();
        Migrator::up(&db, Some(3)).await.unwrap();
        // The first schema had no level column; this database is built from today's entity.
        let backend = db.get_database_backend();
        db.execute_raw(Statement::from_string(
            backend,
            "ALTER TABLE reports DROP COLUMN confidentiality",
        ))
        .await
        .unwrap();
        db.execute_raw(Statement::from_string(backend, OLD_REPORT))
            .await
            .unwrap();

        Migrator::up(&db, None).await.unwrap();

        let stored = report::Entity::find().one(&db).await.unwrap().unwrap();
        assert_eq!(stored.confidentiality, Confidentiality::Internal as i32);
    }
}
