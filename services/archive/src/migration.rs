//! Schema migrations of the archive database.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::entity::{chain_head, checkpoint, conflict, ledger_entry, merkle_hash, rejected};

/// Applies the archive's migrations in order.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(trace_runtime::outbox::migration::CreateOutbox),
            Box::new(CreateLedger),
            Box::new(CreateRetention),
            Box::new(AddHoldQuery),
            Box::new(trace_runtime::outbox::migration::IndexOutboxByEntity),
        ]
    }
}

/// Creates the ledger, the chain head, the Merkle tree, checkpoints, and the rejected and
/// conflict tables.
#[derive(Debug)]
struct CreateLedger;

impl MigrationName for CreateLedger {
    fn name(&self) -> &str {
        "m20261204_000100_create_ledger"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLedger {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(manager, ledger_entry::Entity).await?;
        create(manager, chain_head::Entity).await?;
        create(manager, rejected::Entity).await?;
        create(manager, conflict::Entity).await?;
        create(manager, merkle_hash::Entity).await?;
        create(manager, checkpoint::Entity).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_timeline")
                    .table(ledger_entry::Entity)
                    .col(ledger_entry::Column::EntityType)
                    .col(ledger_entry::Column::EntityId)
                    .col(ledger_entry::Column::EntityVersion)
                    .col(ledger_entry::Column::Sequence)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        let genesis = Query::insert()
            .into_table(chain_head::Entity)
            .columns([
                chain_head::Column::Id,
                chain_head::Column::Sequence,
                chain_head::Column::EntryHash,
                chain_head::Column::UpdatedAt,
            ])
            .values_panic([
                1.into(),
                0i64.into(),
                crate::ledger::GENESIS_HASH.into(),
                0i64.into(),
            ])
            .to_owned();
        manager.exec_stmt(genesis).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "event_conflicts",
            "rejected_messages",
            "chain_head",
            "ledger_entries",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Creates the legal hold and disposition tables.
#[derive(Debug)]
struct CreateRetention;

impl MigrationName for CreateRetention {
    fn name(&self) -> &str {
        "m20261204_000101_create_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRetention {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(manager, crate::entity::legal_hold::Entity).await?;
        create(manager, crate::entity::disposition::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["dispositions", "legal_holds"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Adds the query column of query holds to `legal_holds`.
#[derive(Debug)]
struct AddHoldQuery;

impl MigrationName for AddHoldQuery {
    fn name(&self) -> &str {
        "m20261204_000102_add_hold_query"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddHoldQuery {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A database created after this column joined the entity already has it, because
        // `CreateRetention` builds the table from the entity.
        if manager.has_column("legal_holds", "query").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(crate::entity::legal_hold::Entity)
                    .add_column(ColumnDef::new(crate::entity::legal_hold::Column::Query).text())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(crate::entity::legal_hold::Entity)
                    .drop_column(crate::entity::legal_hold::Column::Query)
                    .to_owned(),
            )
            .await
    }
}

async fn create<E: EntityTrait>(manager: &SchemaManager<'_>, entity: E) -> Result<(), DbErr> {
    let schema = Schema::new(manager.get_database_backend());
    manager
        .create_table(
            schema
                .create_table_from_entity(entity)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
    for mut index in schema.create_index_from_entity(entity) {
        manager
            .create_index(index.if_not_exists().to_owned())
            .await?;
    }
    Ok(())
}
