//! Requests to read the content of a CONFIDENTIAL or SECRET document, and their decisions.

use sea_orm::entity::prelude::*;

use crate::state::AccessRequestState;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_requests")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub document_id: String,
    #[sea_orm(indexed)]
    pub requester_id: String,
    pub purpose: String,
    /// Revision the request covers; 0 covers every revision.
    pub revision: i32,
    pub state: AccessRequestState,
    pub requested_at: i64,
    pub approver_id: Option<String>,
    pub opinion: Option<String>,
    pub decided_at: Option<i64>,
    /// End of an approval; reads at or after it are denied.
    pub expires_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
