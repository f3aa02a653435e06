//! Durable mode (`DECNET_WEBHOOK_DURABLE=true`): events are consumed from a JetStream
//! stream through one durable consumer per (subscription, pattern), shared by every
//! worker, and acknowledged only after success or dead-lettering, so a crash or a
//! restart loses nothing (a redelivery may repeat an event; its id stays the same).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::{FutureExt, StreamExt};

use super::source::{Acker, BusMessage, PatternSource};
use crate::config::Settings;

/// Stream settings derived from the configuration.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub max_age: Duration,
    /// How long the server waits for an acknowledgement before redelivering: longer
    /// than one whole delivery with every retry.
    pub ack_wait: Duration,
    /// Messages handed to one consumer and not yet acknowledged.
    pub max_ack_pending: i64,
}

impl StreamSpec {
    pub fn from_settings(s: &Settings) -> Self {
        let w = &s.webhook;
        let attempts = w.retry_schedule.len() as u32 + 1;
        let waits: Duration = w.retry_schedule.iter().sum();
        Self {
            name: w.stream.clone(),
            subjects: w.stream_subjects.clone(),
            max_age: Duration::from_secs(u64::from(w.dead_letter_days) * 86_400),
            ack_wait: (w.timeout * attempts + waits.mul_f64(1.2) + Duration::from_secs(5))
                .max(Duration::from_secs(10)),
            max_ack_pending: i64::try_from(w.max_inflight_per_sub + w.queue_per_sub)
                .unwrap_or(i64::MAX),
        }
    }
}

/// The durable consumer of one (subscription, pattern): stable across restarts and
/// shared by every worker.
pub fn consumer_name(subscription: &str, pattern: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(pattern.as_bytes());
    format!(
        "{}-{}",
        consumer_prefix(subscription),
        hex::encode(&digest[..6])
    )
}

/// Every consumer of a subscription starts with this.
pub fn consumer_prefix(subscription: &str) -> String {
    format!("decnet-webhook-{subscription}")
}

/// Create the stream if it does not exist.
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        max_age: spec.max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("JetStream stream {}: {e}", spec.name))
}

/// Create the stream before any consumer, so it captures from the start; a bus that
/// is down or has no JetStream is logged, and each subscription retries on its own.
pub async fn prepare(client: &async_nats::Client, spec: &StreamSpec) {
    let js = jetstream::new(client.clone());
    let ready = tokio::time::timeout(Duration::from_secs(10), ensure_stream(&js, spec)).await;
    match ready {
        Ok(Ok(_)) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
            tracing::info!(stream = %spec.name, subjects = ?spec.subjects, "durable mode: JetStream stream ready");
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "durable mode: cannot prepare the JetStream stream (is JetStream enabled?)")
        }
        Err(_) => {
            tracing::warn!(stream = %spec.name, "durable mode: bus not reachable yet; the stream is created on first use")
        }
    }
}

/// Pattern streams from durable consumers. The queue-group argument names the
/// subscription (`decnet-webhook.<uuid>`).
pub fn pattern_source(client: async_nats::Client, spec: StreamSpec) -> PatternSource {
    let js = jetstream::new(client.clone());
    let flusher = client;
    PatternSource::with_flush(
        move |pattern, group| {
            let js = js.clone();
            let spec = spec.clone();
            async move {
                let subscription = group.rsplit('.').next().unwrap_or(&group).to_owned();
                let stream = ensure_stream(&js, &spec).await?;
                let name = consumer_name(&subscription, &pattern);
                let consumer = stream
                    .get_or_create_consumer(
                        &name,
                        pull::Config {
                            durable_name: Some(name.clone()),
                            filter_subject: pattern.clone(),
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            ack_wait: spec.ack_wait,
                            max_ack_pending: spec.max_ack_pending,
                            // A new subscription starts with what is published from now.
                            deliver_policy: jetstream::consumer::DeliverPolicy::New,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| format!("JetStream consumer {name}: {e}"))?;
                // Short pull expiry: a pull request the server missed (say, one sent
                // while the consumer was being created) is renewed within seconds.
                let messages = consumer
                    .stream()
                    .expires(Duration::from_secs(5))
                    .heartbeat(Duration::from_secs(2))
                    .messages()
                    .await
                    .map_err(|e| format!("JetStream consumer {name}: {e}"))?;
                Ok(messages
                    .filter_map(|m| async move {
                        match m {
                            Ok(m) => Some(from_jetstream(m)),
                            Err(e) => {
                                tracing::warn!(error = %e, "JetStream pull failed; retrying");
                                None
                            }
                        }
                    })
                    .boxed())
            }
            .boxed()
        },
        move || {
            let client = flusher.clone();
            async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
            }
            .boxed()
        },
    )
}

fn from_jetstream(m: jetstream::Message) -> BusMessage {
    let seq = m.info().ok().map(|i| i.stream_sequence);
    let msg_id = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_owned());
    BusMessage {
        subject: m.subject.to_string(),
        payload: m.payload.clone(),
        trace: super::source::trace_of(m.headers.as_ref()),
        msg_id,
        seq,
        ack: Some(Acker(Arc::new(m))),
    }
}

/// Delete every durable consumer of a subscription (when it is deleted).
pub async fn delete_consumers(client: &async_nats::Client, stream_name: &str, subscription: &str) {
    let js = jetstream::new(client.clone());
    let Ok(stream) = js.get_stream(stream_name).await else {
        return;
    };
    let prefix = consumer_prefix(subscription);
    let names: Vec<String> = stream
        .consumer_names()
        .filter_map(|n| async move { n.ok() })
        .filter(|n| futures::future::ready(n.starts_with(&prefix)))
        .collect()
        .await;
    for name in names {
        if let Err(e) = stream.delete_consumer(&name).await {
            tracing::warn!(consumer = %name, error = %e, "cannot delete JetStream consumer");
        }
    }
}
