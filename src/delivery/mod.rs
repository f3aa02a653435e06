//! The HTTP delivery client, shared by the worker and the API's test ping and replay.
//!
//! A delivery returns a [`DeliveryOutcome`], never an error: the caller decides what a
//! failure means (circuit breaker, dead letter, test-ping answer).

mod client;
pub mod retry;
pub mod signing;

use std::time::Duration;

pub use client::DeliveryClient;

use crate::{
    config::{Secret, WebhookSettings},
    domain::webhook_url::WebhookUrl,
};

/// Where and how to deliver: one subscription's URL and signing secrets.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: WebhookUrl,
    /// Newest first; two during a secret rotation, and every one signs.
    pub secrets: Vec<Secret>,
}

impl Target {
    pub fn new(url: WebhookUrl, secrets: Vec<Secret>) -> Self {
        Self { url, secrets }
    }
}

/// What became of one delivery (all its attempts).
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryOutcome {
    /// Why it failed; `None` when it was delivered.
    pub failure: Option<FailureKind>,
    /// The HTTP status of the last attempt; `None` when it got no response.
    pub status: Option<u16>,
    /// Why the last attempt failed, at most 512 characters.
    pub error: Option<String>,
    /// Attempts made, including one stopped before sending (guard refusal).
    pub attempts: u32,
    /// The whole delivery, waits between attempts included.
    pub latency: Duration,
    /// The receiver answered `410 Gone`: it wants no more deliveries.
    pub gone: bool,
    /// Every attempt made, in order (the delivery log).
    pub attempt_log: Vec<Attempt>,
}

/// One HTTP attempt of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub at: chrono::DateTime<chrono::Utc>,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// Why a delivery failed, decided by the client that saw it fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Every attempt the retry schedule allows failed, each in a way worth retrying.
    RetriesExhausted,
    /// Retrying cannot help: a final status, a destination the URL guard refuses, a
    /// request that cannot be built.
    NonRetryable,
    /// The worker stopped before the retries ran out.
    Shutdown,
}

impl DeliveryOutcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// A delivery that failed before any attempt could be made.
    pub fn not_attempted(kind: FailureKind, error: String) -> Self {
        Self {
            failure: Some(kind),
            status: None,
            error: Some(error),
            attempts: 0,
            latency: Duration::ZERO,
            gone: false,
            attempt_log: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Per attempt: connect, send and the response head.
    pub timeout: Duration,
    /// Delays between attempts; `len() + 1` attempts at most.
    pub retry_schedule: Vec<Duration>,
    /// Allow loopback, private and link-local destinations.
    pub allow_private: bool,
    /// Requests (and so connections) one sender keeps in flight to one destination
    /// (host and port) at once; more wait their turn, outside the attempt timer.
    pub per_destination: usize,
}

impl DeliverySettings {
    pub fn from_settings(w: &WebhookSettings) -> Self {
        Self {
            timeout: w.timeout,
            retry_schedule: w.retry_schedule.clone(),
            allow_private: w.allow_private,
            // Twice what one subscription may have in flight: one hanging subscription
            // can hold at most half of a destination, and the others keep the rest,
            // while a hundred subscriptions of one SIEM share its connections instead
            // of opening thousands.
            per_destination: w.max_inflight_per_sub.saturating_mul(2),
        }
    }
}
