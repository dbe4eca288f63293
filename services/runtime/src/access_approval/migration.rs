//! Migration that creates the access request and agreement tables.

use sea_orm::{EntityTrait, Schema};
use sea_orm_migration::prelude::*;

use super::entity::{access_request, agreement};

/// Creates `access_requests` and `agreement_acceptances`. A service lists it in its
/// migrator when its confidential records need an approval to read.
#[derive(Debug)]
pub struct CreateAccessApprovals;

impl MigrationName for CreateAccessApprovals {
    fn name(&self) -> &str {
        "m20261205_000002_create_access_approvals"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAccessApprovals {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_table(manager, access_request::Entity).await?;
        create_table(manager, agreement::Entity).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(agreement::Entity).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(access_request::Entity).to_owned())
            .await
    }
}

async fn create_table<E: EntityTrait>(manager: &SchemaManager<'_>, entity: E) -> Result<(), DbErr> {
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
