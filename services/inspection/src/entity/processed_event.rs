//! One row per trace event the consumer applied, so a redelivered event changes nothing. The
//! row also keeps the event's level and entity, which set the lowest level a recorded finding
//! that references the event may take. Rows are kept for good, because nothing prunes this
//! table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processed_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    pub stream_sequence: i64,
    pub processed_at: i64,
    /// `trace.common.v1.Confidentiality` number of the envelope, as
    /// [`crate::observe::event_level`] reads it. Rows stored before the column existed are
    /// INTERNAL.
    pub confidentiality: i32,
    /// Entity type of the envelope, empty in rows stored before the column existed.
    pub entity_type: String,
    /// Entity id of the envelope, empty in rows stored before the column existed.
    pub entity_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
