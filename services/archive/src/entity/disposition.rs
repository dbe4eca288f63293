//! A disposition plan and, once a second person approved it, its certificate.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dispositions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub plan_id: String,
    pub proposed_by: String,
    pub proposed_at: i64,
    /// JSON list of the planned items.
    pub items: String,
    pub approved_by: Option<String>,
    pub executed_at: Option<i64>,
    /// JSON certificate of what was removed.
    pub certificate: Option<String>,
    pub certificate_sha256: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
