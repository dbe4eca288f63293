//! Migration that creates the outbox tables. Every service lists it first in its migrator.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use super::entity::{event, lease};

/// Creates `outbox` and `outbox_lease`. Every service's migrator lists it first, and
/// [`IndexOutboxByEntity`] after its own migrations.
#[derive(Debug)]
pub struct CreateOutbox;

impl MigrationName for CreateOutbox {
    fn name(&self) -> &str {
        "m20261204_000001_create_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(event::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for mut index in schema.create_index_from_entity(event::Entity) {
            manager
                .create_index(index.if_not_exists().to_owned())
                .await?;
        }
        manager
            .create_table(
                schema
                    .create_table_from_entity(lease::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let seed = Query::insert()
            .into_table(lease::Entity)
            .columns([
                lease::Column::Name,
                lease::Column::Holder,
                lease::Column::ExpiresAt,
            ])
            .values_panic(["relay".into(), "".into(), 0i64.into()])
            .to_owned();
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(lease::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(event::Entity).to_owned())
            .await
    }
}

/// Adds the index on (entity_type, entity_id, seq) that the relay uses to find an entity's
/// latest earlier row without a receipt.
#[derive(Debug)]
pub struct IndexOutboxByEntity;

const ENTITY_INDEX: &str = "idx_outbox_entity_seq";

impl MigrationName for IndexOutboxByEntity {
    fn name(&self) -> &str {
        "m20261205_000001_index_outbox_by_entity"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for IndexOutboxByEntity {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(ENTITY_INDEX)
                    .table(event::Entity)
                    .col(event::Column::EntityType)
                    .col(event::Column::EntityId)
                    .col(event::Column::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ENTITY_INDEX)
                    .table(event::Entity)
                    .to_owned(),
            )
            .await
    }
}
