//! What became of a delivery: success or why it failed, with every attempt made.

use std::{sync::Arc, time::Duration};

use crate::db::delivery_log::LogRow;

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
    /// Items of a multi-item body (a `_bulk` batch) that failed on their own while
    /// the others went in; empty otherwise. Indices are into the items sent.
    pub item_failures: Vec<ItemFailure>,
}

/// One item of a multi-item body the receiver refused.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemFailure {
    pub index: usize,
    pub kind: FailureKind,
    /// The receiver's own error for this item.
    pub error: String,
}

/// One HTTP attempt of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub at: chrono::DateTime<chrono::Utc>,
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    /// It failed for lack of a local resource, not because of the receiver.
    pub local: bool,
    /// No access token could be had from the destination's OAuth2 token endpoint: the
    /// receiver was not asked.
    pub token: bool,
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
    /// The last attempt could not be made for lack of a local resource (descriptors,
    /// buffers, memory, ephemeral ports) or because the sender is shutting down: not
    /// the receiver's fault, so never counted against it.
    Local,
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
            item_failures: Vec::new(),
        }
    }
}

/// Append the attempts of one delivery of `event_id` to `out` as delivery-log rows,
/// numbered from 1 (the worker's journal and the API's replay log them alike).
pub fn log_rows(
    subscription: &Arc<str>,
    event_id: &str,
    attempts: Vec<Attempt>,
    out: &mut Vec<LogRow>,
) {
    for (i, t) in attempts.into_iter().enumerate() {
        out.push(LogRow {
            subscription: subscription.clone(),
            event_id: event_id.to_owned(),
            attempt: i32::try_from(i + 1).unwrap_or(i32::MAX),
            at: t.at,
            status: t.status.map(i32::from),
            latency_ms: i32::try_from(t.latency.as_millis()).unwrap_or(i32::MAX),
            error: t.error,
        });
    }
}
