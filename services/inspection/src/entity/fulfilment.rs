//! Rule state: the first record that satisfies a (rule, gap key), kept even when it arrives
//! before the obligation, such as a review before the registration.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "fulfilments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique_key = "rule_gap")]
    pub rule: String,
    #[sea_orm(unique_key = "rule_gap")]
    pub gap_key: String,
    pub event_id: String,
    pub stream_sequence: i64,
    pub occurred_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
