//! The control signals a worker takes from the bus: reload, and stop.

use std::time::Duration;

use futures::{stream::BoxStream, StreamExt};

use super::{
    connection::Bus,
    subjects::{CONTROL, SUBSCRIPTIONS_CHANGED},
};

/// A control message from the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `system.webhook.subscriptions_changed`
    Changed,
    /// `{"action":"stop"}` on `system.webhook.control`
    Stop,
}

/// `subscriptions_changed` and `control` as one stream of signals.
pub async fn bus_signals(bus: &Bus) -> Option<BoxStream<'static, Signal>> {
    let client = bus.client()?;
    let changed = match client.subscribe(SUBSCRIPTIONS_CHANGED.to_owned()).await {
        Ok(s) => s.map(|_| Signal::Changed).boxed(),
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to subscription changes");
            futures::stream::pending().boxed()
        }
    };
    let control = match client.subscribe(CONTROL.to_owned()).await {
        Ok(s) => s
            .filter_map(|m| async move {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
                (v.get("action").and_then(|a| a.as_str()) == Some("stop")).then_some(Signal::Stop)
            })
            .boxed(),
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to worker control");
            futures::stream::pending().boxed()
        }
    };
    // Make sure the server has both before anything counts on them (bounded: a bus
    // that is down must not hold the start).
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    Some(futures::stream::select(changed, control).boxed())
}
