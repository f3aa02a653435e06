//! Durable mode (`DECNET_WEBHOOK_DURABLE=true`): events are consumed from a JetStream
//! stream through one durable consumer per (subscription, pattern), shared by every
//! worker, and acknowledged only after success or dead-lettering, so a crash or a
//! restart loses nothing (a redelivery may repeat an event; its id stays the same).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::{FutureExt, StreamExt};

use super::{
    acks::Acknowledger,
    source::{BusMessage, PatternSource},
};
use crate::config::Settings;

/// How long the server waits for an acknowledgement before it hands a message to
/// another worker: short, so a crashed worker's events come back within seconds.
/// A delivery that takes longer (retries) is kept by in-progress acks.
pub const ACK_WAIT: Duration = Duration::from_secs(8);
/// How often a held message is reported in progress: a few times per `ACK_WAIT`, so
/// a report lost in a leader election does not cost the message.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Pull requests expire and are renewed this often; the server sends a heartbeat
/// every `HEARTBEAT` while a pull waits, and two missed ones end the pull.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a JetStream API request of the pulls (consumer info, create) may take.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between attempts to reopen a failed pull.
const REOPEN_AT_MOST: Duration = Duration::from_secs(1);
/// A consumer missing this long after its pull failed is made again.
const RECREATE_AFTER: Duration = Duration::from_secs(30);
/// An interrupted pull that runs this long without an error has resumed.
const QUIET_AFTER_FAILOVER: Duration = Duration::from_secs(6);

/// Events a durable consumer is handed beyond those in flight. The stream itself is
/// the queue in durable mode, so a burst waits there, stored, rather than in memory;
/// and every message held costs an in-progress ack each `PROGRESS_EVERY`, so holding
/// few keeps that traffic small (at most about 500 acks a second per subscription).
pub const DURABLE_QUEUE_AHEAD: usize = 1024;

/// Stream settings derived from the configuration.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub max_age: Duration,
    pub replicas: usize,
    /// How long the server waits for an acknowledgement before redelivering.
    pub ack_wait: Duration,
    /// Messages handed to one consumer and not yet acknowledged.
    pub max_ack_pending: i64,
}

impl StreamSpec {
    pub fn from_settings(s: &Settings) -> Self {
        let w = &s.webhook;
        Self {
            name: w.stream.clone(),
            subjects: w.stream_subjects.clone(),
            max_age: Duration::from_secs(u64::from(w.dead_letter_days) * 86_400),
            replicas: w.stream_replicas,
            ack_wait: ACK_WAIT,
            max_ack_pending: i64::try_from(
                w.max_inflight_per_sub
                    + crate::bus::connection::queue_events(s).min(DURABLE_QUEUE_AHEAD),
            )
            .unwrap_or(i64::MAX),
        }
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            max_age: self.max_age,
            num_replicas: self.replicas,
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            ..Default::default()
        }
    }

    fn consumer_config(&self, name: &str, pattern: &str) -> pull::Config {
        pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: pattern.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending,
            // A new subscription starts with what is published from now.
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
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

/// Get the stream, creating it if it does not exist (as configured).
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(spec.config())
        .await
        .map_err(|e| format!("JetStream stream {}: {e}", spec.name))
}

/// What differs between an existing stream and the configuration, in words.
fn differences(have: &stream::Config, want: &stream::Config) -> Vec<String> {
    let mut changes = Vec::new();
    if have.num_replicas.max(1) != want.num_replicas {
        changes.push(format!(
            "replicas {} → {}",
            have.num_replicas.max(1),
            want.num_replicas
        ));
    }
    if have.subjects != want.subjects {
        changes.push(format!(
            "subjects {:?} → {:?}",
            have.subjects, want.subjects
        ));
    }
    if have.retention != want.retention {
        changes.push(format!(
            "retention {:?} → {:?}",
            have.retention, want.retention
        ));
    }
    if have.max_age != want.max_age {
        changes.push(format!(
            "max age {}s → {}s",
            have.max_age.as_secs(),
            want.max_age.as_secs()
        ));
    }
    changes
}

/// Why durable mode cannot start: the server refused the configured stream.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StreamRefused(pub String);

/// A stream request that failed: refused by the server, or not answered (yet).
enum Failure {
    Refused(String),
    Unavailable(String),
}

/// A JetStream API error the server may answer while a cluster forms or elects.
fn transient(error: &jetstream::Error) -> bool {
    use jetstream::ErrorCode;
    [
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NOT_ACTIVE,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::CLUSTER_INCOMPLETE,
        ErrorCode::CLUSTER_NO_PEERS,
    ]
    .contains(&error.error_code())
}

fn classify_write(e: jetstream::context::CreateStreamError, what: String) -> Failure {
    use jetstream::context::CreateStreamErrorKind as K;
    let message = format!("{what}: {e}");
    match e.kind() {
        K::JetStream(err) if transient(&err) => Failure::Unavailable(message),
        K::TimedOut | K::Response | K::ResponseParse | K::JetStreamUnavailable => {
            Failure::Unavailable(message)
        }
        _ => Failure::Refused(message),
    }
}

/// Create the stream, or bring an existing one to the configuration (replicas,
/// subjects, retention, age). `None` when it was created, else what changed.
async fn reconcile_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
) -> Result<Option<Vec<String>>, Failure> {
    use jetstream::context::GetStreamErrorKind as K;
    let want = spec.config();
    let mut existing = match js.get_stream(&spec.name).await {
        Ok(s) => s,
        Err(e) => {
            let message = format!("JetStream stream {}: {e}", spec.name);
            return match e.kind() {
                K::JetStream(err) if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND => {
                    js.create_stream(want).await.map_err(|e| {
                        classify_write(e, format!("cannot create JetStream stream {}", spec.name))
                    })?;
                    Ok(None)
                }
                K::JetStream(err) if !transient(&err) => Err(Failure::Refused(message)),
                _ => Err(Failure::Unavailable(message)),
            };
        }
    };
    let have = existing.cached_info().config.clone();
    let changes = differences(&have, &want);
    if changes.is_empty() {
        return Ok(Some(changes));
    }
    let update = stream::Config {
        num_replicas: want.num_replicas,
        subjects: want.subjects.clone(),
        retention: want.retention,
        max_age: want.max_age,
        ..have
    };
    js.update_stream(update).await.map_err(|e| {
        classify_write(
            e,
            format!(
                "the JetStream server refused to change stream {} ({})",
                spec.name,
                changes.join(", ")
            ),
        )
    })?;
    let _ = existing.info().await;
    Ok(Some(changes))
}

/// Prepare the stream before any consumer, so it captures from the start. A refusal
/// (say, more replicas than the cluster has servers) stops the start; a bus that is
/// down or a cluster still electing is retried for a while, then logged, and each
/// subscription retries on its own.
pub async fn prepare(client: &async_nats::Client, spec: &StreamSpec) -> Result<(), StreamRefused> {
    let js = jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut wait = Duration::from_millis(100);
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(left, reconcile_stream(&js, spec)).await;
        match attempt {
            Ok(Ok(outcome)) => break Ok(outcome),
            Ok(Err(Failure::Refused(e))) => {
                return Err(StreamRefused(format!(
                    "durable mode: {e} (check that the servers run JetStream, \
                     DECNET_WEBHOOK_STREAM_REPLICAS against how many there are, and \
                     DECNET_WEBHOOK_STREAM_SUBJECTS)"
                )))
            }
            Ok(Err(Failure::Unavailable(e))) if Instant::now() + wait < deadline => {
                tracing::debug!(error = %e, "durable mode: JetStream not ready; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Ok(Err(Failure::Unavailable(e))) => break Err(e),
            Err(_) => break Err("no answer".to_owned()),
        }
    };
    match outcome {
        Ok(outcome) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
            match outcome {
                None => {
                    tracing::info!(stream = %spec.name, subjects = ?spec.subjects, replicas = spec.replicas, "durable mode: JetStream stream created")
                }
                Some(changes) if changes.is_empty() => {
                    tracing::info!(stream = %spec.name, subjects = ?spec.subjects, replicas = spec.replicas, "durable mode: JetStream stream ready")
                }
                Some(changes) => {
                    tracing::info!(stream = %spec.name, changed = %changes.join(", "), "durable mode: JetStream stream brought to the configuration")
                }
            }
        }
        Err(e) => {
            tracing::warn!(stream = %spec.name, error = %e, "durable mode: JetStream not reachable yet; the stream is prepared on first use")
        }
    }
    Ok(())
}

/// Delete every durable consumer of the stream that this service made, so the next
/// ones start at new messages (durable mode re-enabled after core mode). How many.
pub async fn reset_consumers(client: &async_nats::Client, stream_name: &str) -> usize {
    delete_matching(client, stream_name, "decnet-webhook-").await
}

/// Pattern streams from durable consumers. The queue-group argument names the
/// subscription (`decnet-webhook.<uuid>`).
pub fn pattern_source(client: async_nats::Client, spec: StreamSpec) -> PatternSource {
    let mut js = jetstream::new(client.clone());
    // A request lost in a leader election is given up soon and made again.
    js.set_timeout(API_TIMEOUT);
    let flusher = client;
    let acks = Acknowledger::new(PROGRESS_EVERY);
    PatternSource::with_flush(
        move |pattern, group| {
            let subscription = group.rsplit('.').next().unwrap_or(&group).to_owned();
            let mut puller = Puller {
                js: js.clone(),
                name: consumer_name(&subscription, &pattern),
                pattern,
                spec: spec.clone(),
                messages: None,
                interrupted: None,
                acks: acks.clone(),
            };
            async move {
                // The first pull is made here, so a consumer that cannot be made is
                // reported to the subscription.
                puller.messages = Some(puller.open(true).await?);
                Ok(futures::stream::unfold(puller, |mut p| async move {
                    let next = p.next().await;
                    Some((next, p))
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

/// Pulls one consumer's messages for ever: a pull that fails (a server lost, a
/// leader election, a reconnect) is reopened, and the interruption is logged once
/// when it begins and once when it ends.
struct Puller {
    js: jetstream::Context,
    spec: StreamSpec,
    name: String,
    pattern: String,
    messages: Option<pull::Stream>,
    /// Since when pulls fail, and a retry's wait.
    interrupted: Option<(Instant, Duration)>,
    acks: Acknowledger,
}

impl Puller {
    /// Get the consumer (making it if `may_create`), set to the configuration, and
    /// start pulling.
    async fn open(&self, may_create: bool) -> Result<pull::Stream, String> {
        let stream = ensure_stream(&self.js, &self.spec).await?;
        let want = self.spec.consumer_config(&self.name, &self.pattern);
        let failed = |e: &dyn std::fmt::Display| format!("JetStream consumer {}: {e}", self.name);
        let mut consumer: jetstream::consumer::PullConsumer = match stream
            .get_consumer(&self.name)
            .await
        {
            Ok(mut c) => {
                let have = c.info().await.map_err(|e| failed(&e))?.config.clone();
                // Made by an earlier version (a longer wait) or other settings.
                if have.ack_wait != want.ack_wait || have.max_ack_pending != want.max_ack_pending {
                    stream
                        .update_consumer(pull::Config {
                            deliver_policy: have.deliver_policy,
                            ..want
                        })
                        .await
                        .map_err(|e| failed(&e))?
                } else {
                    c
                }
            }
            // Deleted with its subscription: this pull is about to be stopped, and
            // must not make it again meanwhile.
            Err(e) if !may_create => return Err(failed(&e)),
            Err(_) => stream
                .get_or_create_consumer(&self.name, want)
                .await
                .map_err(|e| failed(&e))?,
        };
        // A consumer just made on a replicated stream has no leader for a moment, and
        // a pull sent meanwhile is lost: wait for one (bounded).
        for _ in 0..50 {
            let led = consumer
                .cached_info()
                .cluster
                .as_ref()
                .is_none_or(|c| c.leader.is_some());
            if led {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = consumer.info().await;
        }
        consumer
            .stream()
            .expires(PULL_EXPIRES)
            .heartbeat(HEARTBEAT)
            .messages()
            .await
            .map_err(|e| failed(&e))
    }

    async fn next(&mut self) -> BusMessage {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                let wait = self.interrupted.map_or(Duration::ZERO, |(_, w)| w);
                tokio::time::sleep(wait).await;
                // A consumer gone for a while (deleted by hand) is made again.
                let may_create = self
                    .interrupted
                    .is_none_or(|(since, _)| since.elapsed() >= RECREATE_AFTER);
                match self.open(may_create).await {
                    Ok(m) => self.messages = Some(m),
                    Err(e) => self.interrupt(&e),
                }
                continue;
            };
            let item = if self.interrupted.is_some() {
                tokio::time::timeout(QUIET_AFTER_FAILOVER, messages.next()).await
            } else {
                Ok(messages.next().await)
            };
            match item {
                // A whole pull period without an error: heartbeats arrive again.
                Err(_) => self.resumed(),
                Ok(Some(Ok(m))) => {
                    self.resumed();
                    return from_jetstream(m, &self.acks);
                }
                Ok(Some(Err(e))) => {
                    self.interrupt(&e.to_string());
                    self.messages = None;
                }
                Ok(None) => {
                    self.interrupt("the pull ended");
                    self.messages = None;
                }
            }
        }
    }

    fn interrupt(&mut self, error: &str) {
        match &mut self.interrupted {
            None => {
                tracing::warn!(consumer = %self.name, %error, "JetStream pull interrupted (a server or leader change?); retrying until it resumes");
                self.interrupted = Some((Instant::now(), Duration::from_millis(250)));
            }
            Some((_, wait)) => {
                tracing::debug!(consumer = %self.name, %error, "JetStream pull still failing");
                *wait = (*wait * 2).min(REOPEN_AT_MOST);
            }
        }
    }

    fn resumed(&mut self) {
        if let Some((since, _)) = self.interrupted.take() {
            tracing::info!(consumer = %self.name, after_secs = since.elapsed().as_secs_f64(), "JetStream pull resumed");
        }
    }
}

fn from_jetstream(m: jetstream::Message, acks: &Acknowledger) -> BusMessage {
    let seq = m.info().ok().map(|i| i.stream_sequence);
    let msg_id = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_owned());
    BusMessage {
        subject: m.subject.clone(),
        payload: m.payload.clone(),
        trace: super::source::trace_of(m.headers.as_ref()),
        msg_id,
        seq,
        ack: Some(acks.hold(m)),
    }
}

/// Delete every durable consumer of a subscription (when it is deleted).
pub async fn delete_consumers(client: &async_nats::Client, stream_name: &str, subscription: &str) {
    delete_matching(client, stream_name, &consumer_prefix(subscription)).await;
}

async fn delete_matching(client: &async_nats::Client, stream_name: &str, prefix: &str) -> usize {
    let js = jetstream::new(client.clone());
    let Ok(stream) = js.get_stream(stream_name).await else {
        return 0;
    };
    let names: Vec<String> = stream
        .consumer_names()
        .filter_map(|n| async move { n.ok() })
        .filter(|n| futures::future::ready(n.starts_with(prefix)))
        .collect()
        .await;
    let mut deleted = 0;
    for name in names {
        match stream.delete_consumer(&name).await {
            Ok(_) => deleted += 1,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot delete JetStream consumer")
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(replicas: usize, subjects: &[&str]) -> StreamSpec {
        StreamSpec {
            name: "DECNET_EVENTS".into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            max_age: Duration::from_secs(86_400),
            replicas,
            ack_wait: ACK_WAIT,
            max_ack_pending: 100,
        }
    }

    #[test]
    fn a_stream_as_configured_needs_no_change() {
        let want = spec(3, &["attacker.>"]).config();
        assert!(differences(&want, &want).is_empty());
    }

    #[test]
    fn replicas_subjects_and_retention_changes_are_named() {
        let have = stream::Config {
            retention: stream::RetentionPolicy::Interest,
            ..spec(1, &["attacker.>"]).config()
        };
        let want = spec(3, &["attacker.>", "decky.>"]).config();
        let changes = differences(&have, &want).join(", ");
        assert!(changes.contains("replicas 1 → 3"), "{changes}");
        assert!(changes.contains("subjects"), "{changes}");
        assert!(changes.contains("retention"), "{changes}");
    }
}
