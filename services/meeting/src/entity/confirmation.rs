//! Confirmations of, and objections to, a minutes version; one per participant and
//! version, which the primary key enforces.

use sea_orm::entity::prelude::*;

use crate::state::Verdict;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "minutes_confirmations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub meeting_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub minutes_version: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub participant_id: String,
    pub verdict: Verdict,
    pub comment: String,
    pub confirmed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
