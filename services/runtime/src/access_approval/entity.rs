//! Tables of access requests and agreement acceptances, present in the database of every
//! service whose confidential records need an approval to read.

use sea_orm::entity::prelude::*;

/// State of an access request, stored as text. A decided request stays decided, so a new
/// need for access is a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum AccessRequestState {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
}

impl AccessRequestState {
    /// Returns the state's name as errors show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
        }
    }
}

/// One request to read a confidential record, with its decision.
pub mod access_request {
    use sea_orm::entity::prelude::*;

    use super::AccessRequestState;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "access_requests")]
    pub struct Model {
        /// UUIDv7 text.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Id of the record the request is for, such as a meeting id.
        #[sea_orm(indexed)]
        pub record_id: String,
        pub requester_id: String,
        /// Sealed at rest for CONFIDENTIAL and SECRET records.
        pub purpose: String,
        pub state: AccessRequestState,
        /// Instants are microseconds since the Unix epoch, UTC.
        pub requested_at: i64,
        pub approver_id: Option<String>,
        /// Sealed at rest for CONFIDENTIAL and SECRET records.
        pub opinion: Option<String>,
        pub decided_at: Option<i64>,
        /// End of an approval; reads at or after it are denied.
        pub expires_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Acceptances of the confidentiality agreement, one row per user and agreement version.
pub mod agreement {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "agreement_acceptances")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: String,
        pub accepted_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

crate::sealed_text_columns!(
    access_request::Model,
    "access_requests",
    |row| row.id.clone(),
    [purpose],
    [opinion]
);
