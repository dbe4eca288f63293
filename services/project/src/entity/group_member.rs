//! Members of an acceptance group and their sign-offs. Position 1 is the group lead.

use sea_orm::entity::prelude::*;

use crate::state::SignOffVerdict;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "acceptance_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub acceptance_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub user_id: String,
    pub name: String,
    pub verdict: Option<SignOffVerdict>,
    pub opinion: Option<String>,
    pub open_issues: Option<String>,
    pub signed_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
