//! Tables of the transactional outbox, present in every producing service's database.

/// One event waiting for, or done with, delivery to the archive.
pub mod event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// Commit order of the row; publication follows it per entity.
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub event_id: String,
        pub subject: String,
        pub entity_type: String,
        pub entity_id: String,
        /// Encoded `trace.event.v1.Envelope`.
        pub envelope: Vec<u8>,
        /// W3C `traceparent` sent as a NATS header.
        pub traceparent: String,
        /// Instants are microseconds since the Unix epoch, UTC.
        pub created_at: i64,
        #[sea_orm(indexed)]
        pub published_at: Option<i64>,
        /// When to publish again if no receipt arrived by then.
        pub receipt_due_at: Option<i64>,
        #[sea_orm(indexed)]
        pub archived_at: Option<i64>,
        pub archive_sequence: Option<i64>,
        pub attempts: i32,
        pub last_error: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Single-writer lease, so that only one replica of a service relays its outbox and the
/// order per entity holds.
pub mod lease {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox_lease")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub holder: String,
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
