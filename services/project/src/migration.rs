//! Database migrations: the shared outbox tables first, then the project tables created
//! from the entities, then the shared access approval tables.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;
use trace_runtime::access_approval::migration::CreateAccessApprovals;
use trace_runtime::outbox::migration::{CreateOutbox, IndexOutboxByEntity};

use crate::entity::{
    acceptance, application, approval, decision, document_update, group_member, member, milestone,
    progress, project, summary, task,
};

/// Migrations of the project database, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateOutbox),
            Box::new(CreateProjectTables),
            Box::new(IndexOutboxByEntity),
            Box::new(CreateAccessApprovals),
        ]
    }
}

/// Creates every project table and its indexes.
#[derive(Debug)]
pub struct CreateProjectTables;

// The name is written by hand because DeriveMigrationName takes it from the file name, and
// the outbox migration's file is also called `migration`.
impl MigrationName for CreateProjectTables {
    fn name(&self) -> &str {
        "m20261204_000300_create_project_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateProjectTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, project::Entity).await?;
        create_table(manager, application::Entity).await?;
        create_table(manager, task::Entity).await?;
        create_table(manager, milestone::Entity).await?;
        create_table(manager, approval::Entity).await?;
        create_table(manager, member::Entity).await?;
        create_table(manager, progress::Entity).await?;
        create_table(manager, document_update::Entity).await?;
        create_table(manager, decision::Entity).await?;
        create_table(manager, acceptance::Entity).await?;
        create_table(manager, group_member::Entity).await?;
        create_table(manager, summary::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, summary::Entity).await?;
        drop_table(manager, group_member::Entity).await?;
        drop_table(manager, acceptance::Entity).await?;
        drop_table(manager, decision::Entity).await?;
        drop_table(manager, document_update::Entity).await?;
        drop_table(manager, progress::Entity).await?;
        drop_table(manager, member::Entity).await?;
        drop_table(manager, approval::Entity).await?;
        drop_table(manager, milestone::Entity).await?;
        drop_table(manager, task::Entity).await?;
        drop_table(manager, application::Entity).await?;
        drop_table(manager, project::Entity).await
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
    use sea_orm::{ActiveModelTrait, DatabaseConnection};

    use super::*;

    fn membership(id: &str, active_slot: Option<&str>) -> member::ActiveModel {
        let row = member::Model {
            id: id.to_owned(),
            project_id: "project-1".to_owned(),
            user_id: "wu.dev".to_owned(),
            active_slot: active_slot.map(str::to_owned),
            name: "Wu".to_owned(),
            department: "it".to_owned(),
            position: "engineer".to_owned(),
            duties: "build".to_owned(),
            added_by: "li.wei".to_owned(),
            added_at: 0,
            duties_changed_by: None,
            duties_changed_at: None,
            removed_by: None,
            removed_at: None,
            removal_reason: None,
        };
        member::ActiveModel::from(row).reset_all()
    }

    async fn insert(db: &DatabaseConnection, row: member::ActiveModel) -> Result<(), DbErr> {
        member::Entity::insert(row)
            .exec_without_returning(db)
            .await
            .map(|_| ())
    }

    #[tokio::test]
    async fn second_active_membership_is_a_unique_violation() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("project.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = trace_runtime::db::connect_and_migrate::<Migrator>(&url)
            .await
            .unwrap();

        insert(&db, membership("m1", Some(member::ACTIVE)))
            .await
            .unwrap();
        insert(&db, membership("m2", None)).await.unwrap();
        insert(&db, membership("m3", None)).await.unwrap();
        let duplicate = insert(&db, membership("m4", Some(member::ACTIVE))).await;

        let error = duplicate.unwrap_err();
        assert!(trace_runtime::db::is_unique_violation(&error), "{error}");
    }
}
