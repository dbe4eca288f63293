//! Database migrations: the shared outbox tables first, then the meeting tables created
//! from the entities, then the columns and the shared access approval tables added since.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;
use trace_runtime::access_approval::migration::CreateAccessApprovals;
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
            Box::new(AddMeetingDepartment),
            Box::new(IndexOutboxByEntity),
            Box::new(CreateAccessApprovals),
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

/// Adds the organiser's department to `meetings`, which the read rule compares with the
/// caller's department, and indexes it for the scoped listings.
#[derive(Debug)]
pub struct AddMeetingDepartment;

impl MigrationName for AddMeetingDepartment {
    fn name(&self) -> &str {
        "m20261205_000201_add_meeting_department"
    }
}

/// Name of the index on `meetings.department`.
const DEPARTMENT_INDEX: &str = "idx-meetings-department";

#[async_trait::async_trait]
impl MigrationTrait for AddMeetingDepartment {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after this column joined the entity already has it, because
        // `CreateMeetingTables` builds the table from the entity. Meetings planned before
        // get an empty department, so only their organiser, attendees, resolution owners
        // and the whole-archive roles read them.
        if !manager.has_column("meetings", "department").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(meeting::Entity)
                        .add_column(
                            ColumnDef::new(meeting::Column::Department)
                                .string()
                                .not_null()
                                .default(""),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(DEPARTMENT_INDEX)
                    .table(meeting::Entity)
                    .col(meeting::Column::Department)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(DEPARTMENT_INDEX)
                    .table(meeting::Entity)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(meeting::Entity)
                    .drop_column(meeting::Column::Department)
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
    use sea_orm::ConnectionTrait;

    use super::*;

    #[tokio::test]
    async fn department_is_added_to_older_meetings() {
        let folder = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            folder.path().join("meeting.db").display()
        );
        let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url)
            .await
            .unwrap();
        // Turn the database back into one migrated before the column existed, with a
        // meeting in it.
        for sql in [
            "DROP INDEX \"idx-meetings-department\"",
            "ALTER TABLE meetings DROP COLUMN department",
            "DELETE FROM seaql_migrations \
             WHERE version = 'm20261205_000201_add_meeting_department'",
            "INSERT INTO meetings (id, topic, channel, location, start_at, end_at, \
             organiser_id, planned_at, state, confidentiality, plan_revision, \
             minutes_version, entity_version) \
             VALUES ('m1', 'Budget', 'IN_PERSON', 'Room 1', 1, 2, 'li.na', 0, 'PLANNED', \
             2, 1, 0, 1)",
        ] {
            db.execute_unprepared(sql).await.unwrap();
        }

        Migrator::up(&db, None).await.unwrap();

        let older = meeting::Entity::find_by_id("m1")
            .one(&db)
            .await
            .unwrap()
            .expect("the older meeting is still there");
        assert_eq!(older.department, "");
        let manager = SchemaManager::new(&db);
        assert!(
            manager
                .has_index("meetings", DEPARTMENT_INDEX)
                .await
                .unwrap()
        );
    }
}
