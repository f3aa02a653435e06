//! What `/api/v1/webhooks` reads and writes. `Webhook` has no secret: only
//! `WebhookCreated` carries it, once.

use chrono::{DateTime, Utc};
use entity::webhook_subscription::Model;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::domain::{event::iso, SimpleEvent};

pub const INSECURE_URL_WARNING: &str =
    "insecure_url: URL uses http://. Deliveries are not encrypted in transit.";

/// A new subscription. At least one of `simple_events` and `topic_patterns` must
/// give a pattern.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Absolute `http`/`https` URL of the receiver; it must resolve to public addresses.
    #[schema(max_length = 2048, example = "https://siem.example.com/decnet")]
    pub url: String,
    /// HMAC key, 16–256 characters; generated when absent.
    #[serde(default)]
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<String>,
    /// Preset event groups, expanded into patterns before `topic_patterns`.
    #[serde(default)]
    pub simple_events: Option<Vec<SimpleEvent>>,
    /// NATS subject patterns (`*` one token, `>` the rest); at most 32 in all.
    #[serde(default)]
    #[schema(example = json!(["attacker.>", "decky.*.state"]))]
    pub topic_patterns: Option<Vec<String>>,
    #[serde(default = "enabled_by_default")]
    #[schema(default = true)]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Changes to a subscription; absent (or null) fields stay as they are. Giving
/// `simple_events` or `topic_patterns` replaces all patterns.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<String>,
    #[serde(default)]
    pub simple_events: Option<Vec<SimpleEvent>>,
    #[serde(default)]
    pub topic_patterns: Option<Vec<String>>,
    /// `true` on a disabled subscription also clears a tripped circuit.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A subscription as the API shows it: every column except the HMAC key.
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    pub uuid: String,
    pub name: String,
    pub url: String,
    pub topic_patterns: Vec<String>,
    pub enabled: bool,
    pub consecutive_failures: i32,
    #[serde(serialize_with = "iso_opt")]
    pub last_success_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "iso_opt")]
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Set when the circuit breaker disabled the subscription.
    #[serde(serialize_with = "iso_opt")]
    pub auto_disabled_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "iso_one")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso_one")]
    pub updated_at: DateTime<Utc>,
    /// `insecure_url: …` for `http://` URLs.
    pub warnings: Vec<String>,
}

impl From<&Model> for Webhook {
    fn from(row: &Model) -> Self {
        Self {
            uuid: row.uuid.clone(),
            name: row.name.clone(),
            url: row.url.clone(),
            topic_patterns: row.patterns(),
            enabled: row.enabled,
            consecutive_failures: row.consecutive_failures,
            last_success_at: row.last_success_at,
            last_failure_at: row.last_failure_at,
            last_error: row.last_error.clone(),
            auto_disabled_at: row.auto_disabled_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            warnings: warnings(&row.url),
        }
    }
}

/// The answer to a create: the subscription and, this one time, its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The HMAC key; it is never shown again.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeleted {
    /// `Webhook deleted`
    pub message: String,
}

/// The result of one synthetic delivery.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

pub fn warnings(url: &str) -> Vec<String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    if scheme.is_some_and(|s| s.eq_ignore_ascii_case("http")) {
        vec![INSECURE_URL_WARNING.to_owned()]
    } else {
        Vec::new()
    }
}

fn iso_one<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*ts))
}

fn iso_opt<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => iso_one(ts, s),
        None => s.serialize_none(),
    }
}
