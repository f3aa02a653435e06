//! `webhook_ledger`: what one worker did with the events of one subscription, as it
//! last reported. At every report, `received = filtered + delivered + dead_lettered +
//! released + queued + in_flight`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_ledger")]
pub struct Model {
    /// The worker process (a new id on every start).
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subscription_uuid: String,
    pub received: i64,
    pub filtered: i64,
    /// Of `filtered`, the events whose filter failed to evaluate.
    pub filter_errors: i64,
    pub delivered: i64,
    pub dead_lettered: i64,
    /// JSON object: dead-letter reason to count.
    pub dead_lettered_by_reason: String,
    /// Handed back to the bus for redelivery (durable mode), or dropped with the
    /// subscription when it was deleted or paused.
    pub released: i64,
    pub queued: i64,
    pub in_flight: i64,
    pub reported_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
