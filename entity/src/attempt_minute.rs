//! `webhook_attempt_minutes`: the delivery log rolled up per subscription, minute,
//! outcome and latency class, written in the same transaction as the attempts it
//! counts.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempt_minutes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub subscription_uuid: String,
    /// Unix seconds of the minute's start.
    #[sea_orm(primary_key, auto_increment = false)]
    pub minute: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub ok: bool,
    /// Index into the latency classes' bounds.
    #[sea_orm(primary_key, auto_increment = false)]
    pub class: i32,
    pub n: i64,
    pub min_ms: i64,
    pub max_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
