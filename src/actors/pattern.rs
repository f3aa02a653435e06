//! PatternActor: one bus subscription (one pattern of one subscription), streamed in,
//! decoded and handed to its SubscriptionActor.

use std::{sync::Arc, time::Instant};

use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, Recipient, StreamHandler,
};
use futures::stream::BoxStream;

use super::{
    journal::RecordDeadLetter,
    ledger::{Account, Place},
    stats::WorkerStats,
};
use crate::{
    bus::{Acker, BusMessage},
    domain::Event,
};

/// One decoded bus event for a subscription.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Incoming {
    pub event: Arc<Event>,
    /// The stream sequence (durable mode).
    pub seq: Option<u64>,
    /// Acknowledges it once delivered or dead-lettered (durable mode).
    pub ack: Option<Acker>,
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
    dead_letters: Option<(Arc<str>, Recipient<RecordDeadLetter>)>,
    /// The subscription's ledger account: undecodable input counts there.
    account: Option<Account>,
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
            account: None,
        }
    }

    /// Count undecodable input in the subscription's ledger `account`.
    pub fn with_account(mut self, account: Account) -> Self {
        self.account = Some(account);
        self
    }

    /// Keep what cannot be decoded in the dead-letter store of `subscription`.
    pub fn with_dead_letters(
        mut self,
        subscription: Arc<str>,
        journal: Recipient<RecordDeadLetter>,
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
            msg.trace.as_ref(),
            now,
        ) {
            Ok(event) => self.target.do_send(Incoming {
                event,
                seq: msg.seq,
                ack: msg.ack,
            }),
            Err(e) => {
                let total = self.stats.record_undecodable();
                if let Some(account) = &self.account {
                    let reason = crate::db::dead_letters::Reason::Undecodable;
                    account.received(Place::DeadLettered(reason), 1);
                }
                if let Some((subscription, journal)) = &self.dead_letters {
                    journal.do_send(RecordDeadLetter {
                        subscription: subscription.clone(),
                        event_id: msg
                            .msg_id
                            .clone()
                            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
                        topic: msg.subject.to_string(),
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
