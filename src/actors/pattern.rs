//! PatternActor: one bus subscription (one pattern of one subscription), streamed in,
//! decoded and handed to its SubscriptionActor.

use std::{sync::Arc, time::Instant};

use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, Recipient, StreamHandler,
};
use bytes::Bytes;
use futures::stream::BoxStream;

use super::{journal::DeadLetter, messages::Incoming, WorkerStats};

/// A message as it comes off the bus, independent of the client library.
#[derive(Clone, Debug)]
pub struct BusMessage {
    pub subject: String,
    pub payload: Bytes,
    /// The `Nats-Msg-Id` header, if any.
    pub msg_id: Option<String>,
    /// The stream sequence (durable mode), to deliver an event once per subscription.
    pub seq: Option<u64>,
    /// Acknowledges it once settled (durable mode).
    pub ack: Option<crate::durable::Acker>,
}

impl From<async_nats::Message> for BusMessage {
    fn from(m: async_nats::Message) -> Self {
        let msg_id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned());
        Self {
            subject: m.subject.to_string(),
            payload: m.payload,
            msg_id,
            seq: None,
            ack: None,
        }
    }
}

/// Stop streaming (unsubscribes when the stream is dropped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPattern;

pub struct PatternActor {
    pattern: String,
    /// Who takes events from the shared decode (see `decoded`).
    taker: u64,
    source: Option<BoxStream<'static, BusMessage>>,
    target: Recipient<Incoming>,
    stats: Arc<WorkerStats>,
    last_warning: Option<Instant>,
    /// Where undecodable input is kept: (subscription uuid, journal).
    dead_letters: Option<(Arc<str>, Recipient<DeadLetter>)>,
}

impl PatternActor {
    pub fn new(
        pattern: String,
        source: BoxStream<'static, BusMessage>,
        target: Recipient<Incoming>,
        stats: Arc<WorkerStats>,
    ) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            pattern,
            taker: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            source: Some(source),
            target,
            stats,
            last_warning: None,
            dead_letters: None,
        }
    }

    /// Keep what cannot be decoded in the dead-letter store of `subscription`.
    pub fn with_dead_letters(
        mut self,
        subscription: Arc<str>,
        journal: Recipient<DeadLetter>,
    ) -> Self {
        self.dead_letters = Some((subscription, journal));
        self
    }
}

impl Actor for PatternActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(source) = self.source.take() {
            ctx.add_stream(source);
        }
    }
}

impl StreamHandler<BusMessage> for PatternActor {
    fn handle(&mut self, msg: BusMessage, _ctx: &mut Self::Context) {
        let now = chrono::Utc::now();
        match super::decoded::decode(
            self.taker,
            &msg.subject,
            &msg.payload,
            msg.msg_id.as_deref(),
            now,
        ) {
            Ok(event) => self.target.do_send(Incoming {
                event,
                seq: msg.seq,
                ack: msg.ack,
            }),
            Err(e) => {
                let total = self.stats.record_undecodable();
                if let Some((subscription, journal)) = &self.dead_letters {
                    journal.do_send(DeadLetter {
                        subscription: subscription.clone(),
                        event_id: msg
                            .msg_id
                            .clone()
                            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
                        topic: msg.subject.clone(),
                        body: msg.payload.clone(),
                        reason: crate::db::dead_letters::Reason::Undecodable,
                        error: Some(crate::db::truncate_chars(&e.to_string(), 512)),
                        status: None,
                        attempts: 0,
                        ack: msg.ack.clone(),
                    });
                } else if let Some(ack) = &msg.ack {
                    // Kept nowhere: at least never redelivered in a loop.
                    ack.ack();
                }
                // One line per pattern every 10 s at most: a flood must not flood the log.
                if self
                    .last_warning
                    .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10))
                {
                    self.last_warning = Some(Instant::now());
                    tracing::warn!(
                        subject = %msg.subject,
                        pattern = %self.pattern,
                        bytes = msg.payload.len(),
                        error = %e,
                        undecodable_total = total,
                        "bus message is not JSON; not delivered"
                    );
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        tracing::debug!(pattern = %self.pattern, "bus stream ended");
        ctx.stop();
    }
}

impl Handler<StopPattern> for PatternActor {
    type Result = ();
    fn handle(&mut self, _: StopPattern, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
