//! The items of a multi-item body (a batch) across the attempts of one delivery:
//! which are still to send after a partial answer, which were refused for good.

use bytes::Bytes;

use super::{
    failure::MAX_ERROR_CHARS,
    outcome::{DeliveryOutcome, FailureKind, ItemFailure},
};
use crate::{db::truncate_chars, domain::event::Event};

/// The fates of a multi-item body's items across the attempts of one delivery.
pub(super) struct Items {
    total: usize,
    /// Original indices of the items still to send, in order.
    pub(super) live: Vec<usize>,
    /// Items refused for good, with their errors.
    refused: Vec<ItemFailure>,
}

impl Items {
    pub(super) fn new(event: &Event) -> Self {
        let total = event.parts.as_ref().map_or(1, |p| p.len());
        Self {
            total,
            live: (0..total).collect(),
            refused: Vec::new(),
        }
    }

    /// Items of the last body sent that failed for good.
    pub(super) fn refused(&mut self, failed: Vec<(usize, String)>) {
        for (i, error) in failed {
            if let Some(&index) = self.live.get(i) {
                self.refused.push(ItemFailure {
                    index,
                    kind: FailureKind::NonRetryable,
                    error: truncate_chars(&error, MAX_ERROR_CHARS),
                });
            }
        }
    }

    /// Keep only the items `retry` names (indices into the last body sent); the
    /// event of their body.
    pub(super) fn keep(&mut self, retry: &[(usize, String)], event: &Event) -> Event {
        self.live = retry
            .iter()
            .filter_map(|(i, _)| self.live.get(*i).copied())
            .collect();
        let parts: Vec<Bytes> = match &event.parts {
            Some(parts) => self
                .live
                .iter()
                .filter_map(|&i| parts.get(i).cloned())
                .collect(),
            None => vec![event.body.clone()],
        };
        let mut next = Event::outgoing(
            event.id.clone(),
            event.topic.clone(),
            Bytes::from(parts.concat()),
        );
        next.trace = event.trace.clone();
        next.parts = Some(parts.into());
        next
    }

    /// The delivery's outcome with the items' fates: when some items went in, the
    /// delivery succeeded and the others are item failures (those still live with
    /// the delivery's last error); when none did, it failed, each refused item
    /// keeping its own error.
    pub(super) fn settled(self, mut outcome: DeliveryOutcome) -> DeliveryOutcome {
        if self.refused.is_empty() && (outcome.ok() || self.live.len() == self.total) {
            return outcome;
        }
        let mut failures = self.refused;
        if let Some(kind) = outcome.failure {
            let error = outcome.error.clone().unwrap_or_default();
            failures.extend(self.live.iter().map(|&index| ItemFailure {
                index,
                kind,
                error: error.clone(),
            }));
        }
        let delivered = self.total.saturating_sub(failures.len());
        if delivered > 0 {
            outcome.failure = None;
            outcome.gone = false;
        } else if outcome.failure.is_none() {
            outcome.failure = Some(FailureKind::NonRetryable);
        }
        failures.sort_by_key(|f| f.index);
        outcome.item_failures = failures;
        outcome
    }
}
