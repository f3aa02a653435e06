//! The connection to NATS: connect with background reconnects, publish.

use std::{sync::Arc, time::Duration};

use async_nats::{Client, ConnectOptions};
use serde_json::Value;

use crate::{config::Settings, domain::SubjectPattern};

/// How long a publish may wait for room in the client's buffer before it is given up.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// The client library's own buffer per bus subscription.
const CLIENT_BUFFER: usize = 64 * 1024;
/// At most one "fell behind" warning per this.
const BEHIND_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The smallest an event weighs in a subscription's queue (its slot and the shared
/// event's bookkeeping, with an empty body and payload).
const SMALLEST_QUEUED_EVENT: usize = 256;
/// What an event typically weighs in a queue: sizes the durable consumer's window.
const TYPICAL_QUEUED_EVENT: usize = 1024;

/// Events of a typical size a subscription's queue holds at most (its count cap or
/// its byte budget, whichever binds first): how many unacknowledged messages a
/// durable consumer is handed, so the server holds back a burst the queue could not
/// take rather than the queue overflowing it into dead letters.
pub fn queue_events(settings: &Settings) -> usize {
    let w = &settings.webhook;
    w.queue_per_sub
        .min(w.queue_bytes_per_sub / TYPICAL_QUEUED_EVENT)
        .max(1)
}

/// Messages a bus subscription holds before the client drops what arrives: as many
/// as the subscription's queue could take at the smallest event size, on top of the
/// library's default, so a burst reaches the queue (where what does not fit its
/// budget is kept as counted dead letters) rather than being dropped on the way.
/// The client's channel grows as it fills: memory is only used while a burst waits.
pub fn subscription_buffer(settings: &Settings) -> usize {
    let w = &settings.webhook;
    w.queue_per_sub
        .min(w.queue_bytes_per_sub / SMALLEST_QUEUED_EVENT)
        .saturating_add(CLIENT_BUFFER)
}

/// The client dropped messages of a subscription whose buffer was full: warned once
/// per `BEHIND_WARNING_EVERY` with how often it happened, so a flood of drops does
/// not become a flood of log lines.
#[derive(Default)]
struct FellBehind {
    since_warning: std::sync::atomic::AtomicU64,
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
}

impl FellBehind {
    fn report(&self, sid: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        crate::metrics::global().bus_fell_behind();
        let reports = self.since_warning.fetch_add(1, Relaxed) + 1;
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < BEHIND_WARNING_EVERY) {
            return;
        }
        *last = Some(std::time::Instant::now());
        self.since_warning.store(0, Relaxed);
        tracing::warn!(
            sid,
            reports,
            "the worker fell behind the bus: a subscription's buffer was full and \
             messages were dropped before it took them (durable mode loses none)"
        );
    }
}

/// A handle on the bus; `None` inside when `DECNET_BUS_ENABLED=false`.
#[derive(Clone, Default)]
pub struct Bus {
    client: Option<Client>,
    /// Durable mode: the subjects the stream captures, published with JetStream
    /// acknowledgements.
    captured: Option<Arc<[SubjectPattern]>>,
}

/// How long a publish to a captured subject keeps retrying for the stream's
/// acknowledgement (a leader election takes a few seconds).
const JETSTREAM_PUBLISH_WAIT: Duration = Duration::from_secs(10);

/// The wait before the `attempt`-th connection attempt (1-based, counted per server
/// tried) with `servers` listed: every server is tried at once, then `every` passes
/// before the next round.
pub fn reconnect_delay(attempt: usize, servers: usize, every: Duration) -> Duration {
    let servers = servers.max(1);
    if attempt > servers && (attempt - 1) % servers == 0 {
        every
    } else {
        Duration::ZERO
    }
}

impl Bus {
    pub fn disabled() -> Self {
        Self {
            client: None,
            captured: None,
        }
    }

    /// Connect in the background: this returns at once even when no server is up. The
    /// client tries every listed server in turn, then waits
    /// `DECNET_WEBHOOK_BUS_RECONNECT_SECS` before the next round, for ever,
    /// re-subscribing what was subscribed once it is back.
    pub async fn connect(settings: &Settings) -> Self {
        if !settings.bus_enabled {
            tracing::info!("bus disabled (DECNET_BUS_ENABLED=false)");
            return Self::disabled();
        }
        let every = settings.webhook.bus_reconnect;
        let servers = settings.nats_urls.join(",");
        let warned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let warned_cb = warned.clone();
        let behind = Arc::new(FellBehind::default());
        let servers_cb = servers.clone();
        let listed = settings.nats_urls.len();
        let options = ConnectOptions::new()
            .name("decnet-webhook")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .subscription_capacity(subscription_buffer(settings))
            // The listed servers only: a round over them is what the wait counts.
            .ignore_discovered_servers()
            .reconnect_delay_callback(move |attempt| reconnect_delay(attempt, listed, every))
            .event_callback(move |event| {
                let warned = warned_cb.clone();
                let servers = servers_cb.clone();
                let behind = behind.clone();
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    match event {
                        async_nats::Event::Connected => {
                            crate::metrics::global().set_bus_connected(true);
                            warned.store(false, SeqCst);
                            tracing::info!(%servers, "bus connected");
                        }
                        async_nats::Event::Disconnected => {
                            crate::metrics::global().set_bus_connected(false);
                            if !warned.swap(true, SeqCst) {
                                tracing::warn!(%servers, retry_secs = every.as_secs_f64(), "bus connection lost; reconnecting");
                            }
                        }
                        async_nats::Event::SlowConsumer(sid) => behind.report(sid),
                        async_nats::Event::Closed => {
                            crate::metrics::global().set_bus_connected(false);
                            tracing::debug!("bus connection closed");
                        }
                        other => tracing::debug!(event = %other, "bus event"),
                    }
                }
            });
        let addrs: Vec<async_nats::ServerAddr> = settings
            .nats_urls
            .iter()
            .filter_map(|u| u.parse().ok())
            .collect();
        match options.connect(addrs).await {
            Ok(client) => {
                let probe = client.clone();
                actix_rt::spawn(async move {
                    actix_rt::time::sleep(Duration::from_secs(6)).await;
                    if probe.connection_state() != async_nats::connection::State::Connected
                        && !warned.swap(true, std::sync::atomic::Ordering::SeqCst)
                    {
                        tracing::warn!(%servers, retry_secs = every.as_secs_f64(), "bus unreachable; running idle and retrying");
                    }
                });
                let captured = settings.webhook.durable.then(|| {
                    settings
                        .webhook
                        .stream_subjects
                        .iter()
                        .filter_map(|s| SubjectPattern::parse(s).ok())
                        .collect()
                });
                Self {
                    client: Some(client),
                    captured,
                }
            }
            Err(e) => {
                tracing::warn!(%servers, error = %e, "bus configuration refused; running without a bus");
                Self::disabled()
            }
        }
    }

    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    pub fn is_connected(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// Publish a JSON value; a failure is logged, never returned.
    pub async fn publish_json(&self, subject: &str, value: &Value) {
        let Some(client) = &self.client else {
            return;
        };
        // The lost or unreachable connection is warned about once where it is
        // noticed; each message held for the reconnect is only worth a debug line.
        if !self.is_connected() {
            tracing::debug!(
                subject,
                "bus not connected; the message waits for the reconnect"
            );
        }
        let body = crate::domain::event::to_sorted_json(value);
        if self.is_captured(subject) {
            // The caller waits as long as for a plain publish; retries through a
            // longer election go on in the background.
            let stored = tokio::spawn(publish_acked(
                client.clone(),
                subject.to_owned(),
                body.into(),
            ));
            let _ = tokio::time::timeout(PUBLISH_WAIT, stored).await;
            return;
        }
        let sent = tokio::time::timeout(
            PUBLISH_WAIT,
            client.publish(subject.to_owned(), body.into()),
        )
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(subject, error = %e, "bus publish failed"),
            Err(_) => tracing::warn!(subject, "bus publish timed out"),
        }
    }

    /// Whether the durable stream captures `subject`.
    fn is_captured(&self, subject: &str) -> bool {
        self.captured
            .as_ref()
            .is_some_and(|c| c.iter().any(|p| p.matches(subject)))
    }

    /// Push buffered publishes out (used before exit); bounded.
    pub async fn flush(&self) {
        if let Some(client) = &self.client {
            if self.is_connected() {
                let _ = tokio::time::timeout(PUBLISH_WAIT, client.flush()).await;
            }
        }
    }
}

/// Publish to a subject the stream captures and wait for the stream to store it,
/// retrying (with one message id, so a retry is not stored twice) through a leader
/// election; a failure is logged, never returned.
async fn publish_acked(client: Client, subject: String, body: bytes::Bytes) {
    let subject = subject.as_str();
    use async_nats::jetstream::{self, message::PublishMessage};
    let js = jetstream::new(client);
    let id = uuid::Uuid::new_v4().to_string();
    let deadline = tokio::time::Instant::now() + JETSTREAM_PUBLISH_WAIT;
    let mut wait = Duration::from_millis(100);
    loop {
        let publish = PublishMessage::build()
            .payload(body.clone())
            .message_id(&id);
        let attempt = tokio::time::timeout_at(deadline, async {
            match js.send_publish(subject.to_owned(), publish).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        match attempt {
            Ok(Ok(())) => return,
            Ok(Err(e)) if tokio::time::Instant::now() + wait < deadline => {
                tracing::debug!(subject, error = %e, "JetStream publish not acknowledged; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Ok(Err(e)) => {
                return tracing::warn!(subject, error = %e, "bus publish not stored by the stream")
            }
            Err(_) => {
                return tracing::warn!(
                    subject,
                    "bus publish not acknowledged by the stream in time"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_server_is_tried_before_the_wait() {
        let every = Duration::from_secs(60);
        let waits: Vec<Duration> = (1..=7).map(|a| reconnect_delay(a, 3, every)).collect();
        let zero = Duration::ZERO;
        assert_eq!(waits, [zero, zero, zero, every, zero, zero, every]);
    }

    #[test]
    fn one_server_waits_between_attempts() {
        let every = Duration::from_secs(5);
        assert_eq!(reconnect_delay(1, 1, every), Duration::ZERO);
        assert_eq!(reconnect_delay(2, 1, every), every);
        assert_eq!(reconnect_delay(3, 1, every), every);
    }
}
