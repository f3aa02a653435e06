//! `webhook_dead_letters`: deliveries that failed for good, kept for replay.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_dead_letters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uuid: String,
    #[sea_orm(indexed)]
    pub subscription_uuid: String,
    pub event_id: String,
    pub topic: String,
    /// The exact body that was (or would have been) sent; raw bytes for undecodable input.
    pub body: Vec<u8>,
    /// `retries_exhausted`, `non_retryable`, `queue_overflow`, `circuit_tripped`,
    /// `undecodable`, `shutdown`, `render_failed`, `local_failure`, `crashed`.
    pub reason: String,
    pub error: Option<String>,
    pub status: Option<i32>,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
