//! Documents of the document service that a communication concerns, such as contracts, with
//! the person responsible and how the document circulates.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "communication_documents")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub communication_id: String,
    /// Position in the request, from 0.
    pub position: i32,
    /// Document id (UUID) in the document service.
    #[sea_orm(indexed)]
    pub document_id: String,
    /// `trace.worklog.v1.LinkedDocumentKind` name, for example `LINKED_DOCUMENT_KIND_CONTRACT`.
    pub kind: String,
    pub responsible_id: String,
    pub circulation: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
