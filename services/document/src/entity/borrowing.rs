//! Borrowings of registered documents, from the application to the return or loss and how
//! damage or loss was handled.

use sea_orm::entity::prelude::*;

use crate::state::{BorrowingState, ReturnCondition};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "borrowings")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(indexed)]
    pub document_id: String,
    pub borrower_id: String,
    pub reason: String,
    /// Civil date `YYYYMMDD` in the business time zone.
    #[sea_orm(indexed)]
    pub expected_return_date: i32,
    #[sea_orm(indexed)]
    pub state: BorrowingState,
    pub requested_at: i64,
    pub approver_id: Option<String>,
    pub approver_opinion: Option<String>,
    pub decided_at: Option<i64>,
    pub lent_at: Option<i64>,
    /// Set once, when the overdue check first finds the borrowing past its date.
    pub overdue_since: Option<i64>,
    pub returned_at: Option<i64>,
    pub return_condition: Option<ReturnCondition>,
    pub condition_note: Option<String>,
    /// Whether the return came after the expected return date.
    pub returned_late: Option<bool>,
    pub lost_at: Option<i64>,
    pub loss_description: Option<String>,
    pub handling_result: Option<String>,
    pub handled_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
