//! `webhook_subscriptions`: one HTTP endpoint subscribed to bus subject patterns.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
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
    /// The secret before the last rotation; it keeps signing until
    /// `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub secret_rotated_at: Option<DateTimeUtc>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    /// Deliver in publish order, one at a time.
    pub ordered: bool,
    /// Post up to this many events together (`None`: one event per request).
    pub batch_max: Option<i32>,
    /// How long a partial batch waits for more events.
    pub batch_linger_ms: Option<i32>,
    /// Token-bucket rate of deliveries per second (`None`: unlimited).
    #[sea_orm(column_type = "Double")]
    pub rate_limit_per_sec: Option<f64>,
    /// `raw`, `slack`, `thehive`, `template`, `splunk_hec`, `elastic_bulk`,
    /// `sentinel`, `pagerduty`, `teams` or `discord`.
    pub shape: String,
    /// The minijinja template of `shape = "template"`.
    pub template: Option<String>,
    /// The destination shape's settings (index, sourcetype, stream…), a JSON object.
    pub destination: Option<Json>,
    /// The destination's secret (PagerDuty's routing key), stored as the secret is.
    pub destination_secret: Option<String>,
    /// Static request headers: a JSON list of `{"name", "value"}`, each value stored
    /// as the secret is (sealed with `DECNET_SECRET_KEY` when set).
    pub headers: Option<String>,
    /// How requests authenticate: a JSON object with `type` and its fields, the
    /// secret ones stored as the secret is.
    pub auth: Option<String>,
    /// A private CA bundle (PEM) trusted for this receiver instead of the public roots.
    pub tls_ca_pem: Option<String>,
    /// A client certificate chain (PEM) presented to the receiver.
    pub tls_client_cert_pem: Option<String>,
    /// The client certificate's private key (PEM), stored as the secret is.
    pub tls_client_key_pem: Option<String>,
    /// An expression over the envelope; only events it holds for are delivered.
    pub filter: Option<String>,
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
