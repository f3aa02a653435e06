//! How deliveries are made: timeouts, the retry schedule, the URL guard's mode and the
//! connections one sender keeps to a destination.

use std::time::Duration;

use crate::config::WebhookSettings;

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
    /// How long Splunk HEC may take to acknowledge indexing a request's events.
    pub splunk_ack_timeout: Duration,
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
            splunk_ack_timeout: w.splunk_ack_timeout,
        }
    }
}
