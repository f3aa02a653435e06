//! What `/api/v1/webhooks` reads and writes. `Webhook` has no secret: only
//! `WebhookCreated` carries it, once.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use chrono::{DateTime, Utc};
use entity::{delivery_attempt, webhook_subscription::Model};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use super::{
    access::{AuthInput, AuthView, HeaderList, TlsInput, TlsView},
    options::{present, ShapeName},
};
use crate::{
    db::dead_letters,
    domain::{event::iso, pattern::first_starting_with_wildcard, SimpleEvent},
    shape::Destination,
};

pub const INSECURE_URL_WARNING: &str =
    "insecure_url: URL uses http://. Deliveries are not encrypted in transit.";
/// On every subscription with a pattern such as `>` or `*.>`.
pub const WILDCARD_PATTERN_WARNING: &str = "wildcard_pattern: a pattern starting with a wildcard \
     also matches NATS's internal subjects, such as request replies (_INBOX).";
/// On create and rotate answers when `DECNET_SECRET_KEY` is not set.
pub const PLAINTEXT_SECRET_WARNING: &str =
    "plaintext_secret: DECNET_SECRET_KEY is not set; the secret is stored in plaintext.";

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
    /// Deliver in publish order, one delivery in flight; a retrying event holds
    /// the ones behind it.
    #[serde(default)]
    #[schema(default = false)]
    pub ordered: bool,
    /// Post up to this many events together as `{"events":[…]}`; 1 or null: one
    /// event per request.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 50)]
    pub batch_max: Option<i32>,
    /// How long a partial batch waits for more events (1000 when batching
    /// without it); only with `batch_max` above 1.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5000)]
    pub batch_linger_ms: Option<i32>,
    /// Deliveries per second at most (a token bucket), 0.001–10000; null: unlimited.
    #[serde(default)]
    #[schema(minimum = 0.001, maximum = 10000)]
    pub rate_limit_per_sec: Option<f64>,
    /// The body each event becomes; `raw` (the envelope) when absent.
    #[serde(default)]
    pub shape: Option<ShapeName>,
    /// The minijinja template of `shape = "template"` (docs/shapes.md); refused
    /// with any other shape.
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub template: Option<String>,
    /// Settings of a destination shape (docs/destinations.md); each shape takes
    /// only its own, and `sentinel` requires `dcr_immutable_id` and `stream`.
    #[serde(default)]
    pub destination: Option<Destination>,
    /// PagerDuty's integration key, required with `shape = "pagerduty"`; stored
    /// sealed and never shown again.
    #[serde(default)]
    #[schema(write_only, min_length = 32, max_length = 32)]
    pub routing_key: Option<String>,
    /// Static request headers, name → value, at most 20 (README "Authenticating to
    /// receivers"). Values are write-only: answers list the names only.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>, example = json!({"X-Tenant": "blue"}))]
    pub headers: Option<HeaderList>,
    /// How requests authenticate; its secret parts are write-only.
    #[serde(default)]
    pub auth: Option<AuthInput>,
    /// A private CA bundle and a client certificate for this receiver; the key is
    /// write-only.
    #[serde(default)]
    pub tls: Option<TlsInput>,
    /// Only events this expression holds for are delivered (docs/filters.md), e.g.
    /// `payload.score >= 80`; absent or blank: every event.
    #[serde(default)]
    #[schema(
        max_length = 2048,
        example = "payload.score >= 80 and payload.service in [\"ssh\", \"rdp\"]"
    )]
    pub filter: Option<String>,
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
    #[serde(default)]
    pub ordered: Option<bool>,
    /// `null` turns batching off (and drops `batch_linger_ms`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 50)]
    pub batch_max: Option<Option<i32>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 5000)]
    pub batch_linger_ms: Option<Option<i32>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0.001, maximum = 10000)]
    pub rate_limit_per_sec: Option<Option<f64>>,
    /// A shape other than `template` drops the stored template.
    #[serde(default)]
    pub shape: Option<ShapeName>,
    /// `null` clears it (only meaningful when also leaving `shape = "template"`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 16384)]
    pub template: Option<Option<String>>,
    /// Replaces the destination settings; `null` clears them. A new shape without
    /// them starts with none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Destination>)]
    pub destination: Option<Option<Destination>>,
    /// A new PagerDuty integration key (kept when absent; dropped when leaving
    /// `shape = "pagerduty"`).
    #[serde(default)]
    #[schema(write_only, min_length = 32, max_length = 32)]
    pub routing_key: Option<String>,
    /// Replaces every static header; a header given as `null` keeps its stored
    /// value; `null` removes them all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<std::collections::HashMap<String, Option<String>>>)]
    pub headers: Option<Option<HeaderList>>,
    /// Replaces the authorization; a secret part left out keeps the stored one of
    /// the same type; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AuthInput>)]
    pub auth: Option<Option<AuthInput>>,
    /// Replaces the TLS settings; `client_key_pem` left out keeps the stored key
    /// while a client certificate is given; `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TlsInput>)]
    pub tls: Option<Option<TlsInput>>,
    /// `null` or blank removes the filter.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub filter: Option<Option<String>>,
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
    /// Delivery options (README "Delivery options"); all off by default.
    pub ordered: bool,
    pub batch_max: Option<i32>,
    pub batch_linger_ms: Option<i32>,
    pub rate_limit_per_sec: Option<f64>,
    #[schema(value_type = ShapeName)]
    pub shape: String,
    pub template: Option<String>,
    /// The destination shape's settings; null when it has none.
    pub destination: Option<Destination>,
    /// Whether a PagerDuty routing key is stored (the key itself is never shown).
    pub routing_key_set: bool,
    /// Names of the static headers; their values are never shown.
    pub headers: Vec<String>,
    /// The authorization scheme and its non-secret fields.
    pub auth: Option<AuthView>,
    /// The TLS settings, without the key.
    pub tls: Option<TlsView>,
    /// Only events this expression holds for are delivered; null: every event.
    pub filter: Option<String>,
    #[serde(serialize_with = "iso_one")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso_one")]
    pub updated_at: DateTime<Utc>,
    /// When the secret was last rotated.
    #[serde(serialize_with = "iso_opt")]
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// Until when deliveries are also signed with the secret before the last
    /// rotation; null when no previous secret signs any more.
    #[serde(serialize_with = "iso_opt")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// `insecure_url: …` for `http://` URLs, `wildcard_pattern: …` for a pattern
    /// starting with a wildcard; on create and rotate answers also
    /// `plaintext_secret: …` when secrets are stored unencrypted.
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
            ordered: row.ordered,
            batch_max: row.batch_max,
            batch_linger_ms: row.batch_linger_ms,
            rate_limit_per_sec: row.rate_limit_per_sec,
            shape: row.shape.clone(),
            template: row.template.clone(),
            destination: Destination::from_json(row.destination.as_ref())
                .ok()
                .filter(|d| !d.is_empty()),
            routing_key_set: row.destination_secret.is_some(),
            headers: super::access::header_names(row),
            auth: AuthView::of(row),
            tls: TlsView::of(row),
            filter: row.filter.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            secret_rotated_at: row.secret_rotated_at,
            previous_secret_expires_at: row
                .previous_secret_expires_at
                .filter(|expires| *expires > Utc::now()),
            warnings: warnings(row),
        }
    }
}

/// The answer to a create or a rotation: the subscription and, this one time, its
/// secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The HMAC key; it is never shown again.
    pub secret: String,
}

/// A secret rotation; the body may be empty.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The new HMAC key, 16–256 characters; generated when absent.
    #[serde(default)]
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<String>,
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

/// A delivery that failed for good, kept for replay (newest first in listings).
///
/// The stored body is the exact bytes that were, or would have been, sent. Exactly one
/// of `body` and `body_base64` is set: `body` holds them as text when they are UTF-8
/// (always so for an envelope), `body_base64` (standard alphabet, padded) otherwise.
#[derive(Serialize, ToSchema)]
pub struct DeadLetter {
    pub uuid: String,
    pub event_id: String,
    pub topic: String,
    /// `retries_exhausted`, `non_retryable`, `queue_overflow`, `circuit_tripped`,
    /// `shutdown`, `render_failed` (the subscription's shape could not render the
    /// event), `local_failure` (the last attempt failed for lack of a local resource,
    /// such as file descriptors, not because of the receiver), `crashed` (the
    /// subscription stopped unexpectedly while it held the event), or `undecodable`: bus
    /// input that is not JSON, kept as received and never replayed.
    #[schema(example = "retries_exhausted")]
    pub reason: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The receiver's last HTTP status, if it answered.
    pub status_code: Option<u16>,
    pub attempts: i32,
    #[serde(serialize_with = "iso_one")]
    pub created_at: DateTime<Utc>,
    /// The exact body as text, when it is UTF-8.
    pub body: Option<String>,
    /// The exact body in base64, when it is not UTF-8.
    pub body_base64: Option<String>,
}

impl From<dead_letters::StoredDeadLetter> for DeadLetter {
    fn from(row: dead_letters::StoredDeadLetter) -> Self {
        let (body, body_base64) = match String::from_utf8(row.body) {
            Ok(text) => (Some(text), None),
            Err(raw) => (None, Some(BASE64.encode(raw.into_bytes()))),
        };
        Self {
            uuid: row.uuid,
            event_id: row.event_id,
            topic: row.topic,
            reason: row.reason,
            error: row.error,
            status_code: status_code(row.status),
            attempts: row.attempts,
            created_at: row.created_at,
            body,
            body_base64,
        }
    }
}

/// One page of dead letters.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    /// Dead letters of the subscription in all.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// What a replay did. It stops at the first failure, so the receiver sees the dead
/// letters in order; what was not delivered is still stored.
#[derive(Serialize, ToSchema)]
pub struct ReplayResult {
    /// Delivered and removed.
    pub replayed: u64,
    /// The delivery that stopped the replay.
    pub failed: Option<ReplayFailure>,
    /// Undecodable entries in range, left in place: they have no envelope to send.
    pub skipped: u64,
    /// Replayable entries in range still stored (the failed one included); replay
    /// again to continue.
    pub remaining: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayFailure {
    pub event_id: String,
    pub error: String,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
}

/// One HTTP attempt of a delivery (the delivery log).
#[derive(Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub event_id: String,
    /// 1 for the first attempt of a delivery.
    pub attempt: i32,
    #[serde(serialize_with = "iso_one")]
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    pub latency_ms: i32,
    pub ok: bool,
    pub error: Option<String>,
}

impl From<delivery_attempt::Model> for DeliveryAttempt {
    fn from(row: delivery_attempt::Model) -> Self {
        Self {
            event_id: row.event_id,
            attempt: row.attempt,
            attempted_at: row.attempted_at,
            status_code: status_code(row.status),
            latency_ms: row.latency_ms,
            ok: row.ok,
            error: row.error,
        }
    }
}

/// One page of the delivery log.
#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryAttempt>,
    /// Attempts matching the filter in all.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

/// Stored as `i32`; anything outside HTTP's range is no status.
fn status_code(stored: Option<i32>) -> Option<u16> {
    stored.and_then(|s| u16::try_from(s).ok())
}

/// What the subscription as stored deserves a warning for.
pub fn warnings(row: &Model) -> Vec<String> {
    let mut warnings = Vec::new();
    let scheme = row.url.split_once("://").map(|(s, _)| s);
    if scheme.is_some_and(|s| s.eq_ignore_ascii_case("http")) {
        warnings.push(INSECURE_URL_WARNING.to_owned());
    }
    if first_starting_with_wildcard(&row.patterns()).is_some() {
        warnings.push(WILDCARD_PATTERN_WARNING.to_owned());
    }
    warnings
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
