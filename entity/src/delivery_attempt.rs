//! `webhook_delivery_attempts`: one row per HTTP attempt (the delivery log).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub subscription_uuid: String,
    pub event_id: String,
    pub attempt: i32,
    pub attempted_at: DateTimeUtc,
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
