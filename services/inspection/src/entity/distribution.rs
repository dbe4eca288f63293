//! One row per department an inspection report was sent to.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_distributions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique_key = "inspection_department", indexed)]
    pub inspection_id: String,
    #[sea_orm(unique_key = "inspection_department")]
    pub department: String,
    pub distributed_by: String,
    pub distributed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
