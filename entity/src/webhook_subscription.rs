//! `webhook_subscriptions`: one HTTP endpoint subscribed to bus subject patterns.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uuid: String,
    #[sea_orm(unique)]
    pub name: String,
    pub url: String,
    pub secret: String,
    /// JSON list of NATS subject patterns, never empty.
    pub topic_patterns: Json,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub last_success_at: Option<DateTimeUtc>,
    pub last_failure_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub auto_disabled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The stored patterns as strings (non-string entries are skipped).
    pub fn patterns(&self) -> Vec<String> {
        match &self.topic_patterns {
            Json::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}
