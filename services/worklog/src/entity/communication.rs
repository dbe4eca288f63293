//! One row per recorded communication.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "communications")]
pub struct Model {
    /// UUIDv7 text.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `trace.worklog.v1.CommunicationScope` name, for example `COMMUNICATION_SCOPE_EXTERNAL`.
    pub scope: String,
    /// `trace.worklog.v1.CommunicationChannel` name, for example
    /// `COMMUNICATION_CHANNEL_EMAIL`.
    pub channel: String,
    #[sea_orm(indexed)]
    pub occurred_at: i64,
    pub subject: String,
    /// Counterpart organisation as given; empty for internal communications.
    pub counterpart: String,
    /// `validate::search_key(counterpart)`, which counterpart search matches.
    #[sea_orm(indexed)]
    pub counterpart_key: String,
    pub content: String,
    pub outcome: String,
    pub notice: String,
    pub minute_taker_id: Option<String>,
    /// `trace.common.v1.Confidentiality` number.
    pub confidentiality: i32,
    #[sea_orm(indexed)]
    pub recorded_by: String,
    /// Department of the recorder.
    #[sea_orm(indexed)]
    pub department: String,
    pub recorded_at: i64,
    pub entity_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
