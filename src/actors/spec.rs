//! What the worker runs of a stored subscription: its target, patterns and delivery
//! options, read from the row; the supervisor diffs these on reload.

use std::{sync::Arc, time::Duration};

use crate::{
    config::Secret,
    delivery::{ReceiverAccess, Target},
    domain::UrlError,
    secrets::{SecretError, SecretStore},
    shape::{Shape, ShapeError},
};

/// What the supervisor knows of a subscription, and diffs on reload.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionSpec {
    pub uuid: Arc<str>,
    pub name: Arc<str>,
    pub url: String,
    pub secret: Secret,
    /// The secret before the last rotation, signing beside `secret` until its expiry.
    pub previous_secret: Option<Secret>,
    pub previous_secret_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub patterns: Vec<String>,
    pub options: DeliveryOptions,
    /// The destination's secret (PagerDuty's routing key), opened.
    pub destination_secret: Option<Secret>,
    /// Static headers, authorization and TLS of the receiver, secrets opened.
    pub access: ReceiverAccess,
    /// Only events this expression holds for are queued.
    pub filter: Option<String>,
}

/// The per-subscription delivery options, as stored; a change restarts
/// the subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryOptions {
    /// Publish order, one delivery in flight.
    pub ordered: bool,
    /// Events per request; 1 posts each event alone.
    pub batch_max: usize,
    /// How long a partial batch waits for more.
    pub batch_linger: Duration,
    /// Deliveries (requests) per second; `None` is unlimited.
    pub rate_limit_per_sec: Option<f64>,
    pub shape: String,
    pub template: Option<String>,
    /// The destination shape's settings, as stored.
    pub destination: Option<serde_json::Value>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            ordered: false,
            batch_max: 1,
            batch_linger: Duration::ZERO,
            rate_limit_per_sec: None,
            shape: "raw".to_owned(),
            template: None,
            destination: None,
        }
    }
}

/// How long a partial batch waits when the row sets no linger.
pub const DEFAULT_BATCH_LINGER: Duration = Duration::from_millis(1000);

impl DeliveryOptions {
    pub fn from_row(row: &entity::webhook_subscription::Model) -> Self {
        Self {
            ordered: row.ordered,
            batch_max: row
                .batch_max
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n >= 1)
                .unwrap_or(1),
            batch_linger: row
                .batch_linger_ms
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0)
                .map_or(DEFAULT_BATCH_LINGER, Duration::from_millis),
            // A stored rate out of bounds (saved before they were checked) runs at the
            // nearest bound.
            rate_limit_per_sec: row
                .rate_limit_per_sec
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(super::rate::clamp_rate),
            shape: row.shape.clone(),
            template: row.template.clone(),
            destination: row.destination.clone(),
        }
    }

    /// The shape these options describe, or why it cannot be built.
    pub fn build_shape(&self) -> Result<Shape, ShapeError> {
        Shape::from_stored(
            &self.shape,
            self.template.as_deref(),
            self.destination.as_ref(),
        )
    }
}

impl SubscriptionSpec {
    /// The spec of a stored row, its secrets opened with `secrets` (the one place the
    /// worker decrypts them); a previous secret already expired is left out.
    pub fn from_row(
        row: &entity::webhook_subscription::Model,
        secrets: &SecretStore,
    ) -> Result<Self, SecretError> {
        let previous = secrets.previous(row, chrono::Utc::now())?;
        Ok(Self {
            uuid: row.uuid.as_str().into(),
            name: row.name.as_str().into(),
            url: row.url.clone(),
            secret: secrets.open(&row.uuid, &row.secret)?,
            previous_secret_expires_at: previous.as_ref().map(|(_, expires)| *expires),
            previous_secret: previous.map(|(secret, _)| secret),
            patterns: row.patterns(),
            options: DeliveryOptions::from_row(row),
            destination_secret: row
                .destination_secret
                .as_deref()
                .map(|stored| secrets.open(&row.uuid, stored))
                .transpose()?,
            access: secrets.receiver_access(row)?,
            filter: row.filter.clone(),
        })
    }

    /// Signed with the secret, and with the previous one while its window is open.
    pub fn target(&self) -> Result<Target, UrlError> {
        let mut secrets = vec![self.secret.clone()];
        if let (Some(previous), Some(expires)) =
            (&self.previous_secret, self.previous_secret_expires_at)
        {
            if expires > chrono::Utc::now() {
                secrets.push(previous.clone());
            }
        }
        // A shape that cannot be built dead-letters every event; the URL is then
        // the stored one.
        let shape = self.options.build_shape().unwrap_or_default();
        Target::for_subscription(
            &self.url,
            secrets,
            &shape,
            &self.uuid,
            self.destination_secret.clone(),
        )
        .map(|target| target.with_access(&self.access))
    }

    /// The NATS queue group: every worker's copy of this subscription shares it, so
    /// each event is delivered once across workers; it also makes the server hand an
    /// event matching several of its patterns to one of them only.
    pub fn queue_group(&self) -> String {
        format!("decnet-webhook.{}", self.uuid)
    }
}
