//! CircuitActor: counts consecutive failures per subscription, persists the
//! record_*/trip writes in order, and trips a subscription's circuit.
//!
//! Failure counts come back from the database's atomic increment, so several workers
//! share one count. Success stamps are coalesced (at most one write per subscription
//! per `SUCCESS_FLUSH`) so delivery never waits on the database. A write that fails is
//! retried with backoff, in order, and never blocks deliveries.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture,
    WrapFuture,
};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use crate::{
    bus::{Bus, CIRCUIT_TRIPPED},
    db::subscriptions as repo,
    delivery::{DeliveryOutcome, FailureKind},
};

/// What one delivery came to, for the circuit breaker; answers whether the circuit
/// tripped on it, so the subscription stops before it starts another delivery.
#[derive(Message, Clone, Debug)]
#[rtype(result = "bool")]
pub struct Report {
    pub uuid: Arc<str>,
    pub name: Arc<str>,
    pub outcome: DeliveryOutcome,
}

/// The circuit of a subscription tripped: stop it now.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Tripped {
    pub uuid: Arc<str>,
}

/// A subscription (re)started: forget any circuit state kept for it.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct ResetCircuit {
    pub uuid: Arc<str>,
}

/// Record a problem of the subscription that is not a delivery failure on its row
/// (`last_error`, `last_failure_at`), in order with its other state writes.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Note {
    pub uuid: Arc<str>,
    pub error: String,
}

/// Persist every pending state write (bounded), then answer.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Flush;

const SUCCESS_FLUSH: Duration = Duration::from_secs(1);
/// How long a shutdown waits for the database to take the last writes.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Pending writes kept per subscription while the database is away.
const MAX_PENDING: usize = 10_000;

#[derive(Clone, Debug)]
enum Op {
    Success(DateTime<Utc>),
    Failure { ts: DateTime<Utc>, error: String },
    Trip { ts: DateTime<Utc>, failures: i32 },
    Note { ts: DateTime<Utc>, error: String },
}

#[derive(Default)]
struct State {
    name: Arc<str>,
    ops: VecDeque<Op>,
    writing: bool,
    /// A success not yet written (coalesced).
    dirty_success: Option<DateTime<Utc>>,
    /// The count as the database last said, or as counted here while it is away.
    failures: i32,
    tripped: bool,
}

pub struct CircuitActor {
    db: DatabaseConnection,
    bus: Bus,
    threshold: i32,
    supervisor: Option<Recipient<Tripped>>,
    subs: HashMap<Arc<str>, State>,
    flush_waiters: Vec<oneshot::Sender<()>>,
}

impl CircuitActor {
    pub fn new(db: DatabaseConnection, bus: Bus, threshold: u32) -> Self {
        Self {
            db,
            bus,
            threshold: i32::try_from(threshold).unwrap_or(i32::MAX),
            supervisor: None,
            subs: HashMap::new(),
            flush_waiters: Vec::new(),
        }
    }

    pub fn with_supervisor(mut self, supervisor: Recipient<Tripped>) -> Self {
        self.supervisor = Some(supervisor);
        self
    }

    fn enqueue(&mut self, uuid: &Arc<str>, op: Op, ctx: &mut Context<Self>) {
        let Some(state) = self.subs.get_mut(uuid) else {
            return;
        };
        if state.ops.len() >= MAX_PENDING {
            state.ops.pop_front();
            tracing::warn!(subscription = %uuid, "database unavailable too long; oldest state write dropped");
        }
        state.ops.push_back(op);
        self.write_next(uuid.clone(), ctx);
    }

    /// Run the next pending write of `uuid`, unless one is already running.
    fn write_next(&mut self, uuid: Arc<str>, ctx: &mut Context<Self>) {
        let Some(state) = self.subs.get_mut(&uuid) else {
            return;
        };
        if state.writing {
            return;
        }
        let Some(op) = state.ops.front().cloned() else {
            self.notify_if_idle();
            return;
        };
        state.writing = true;
        let db = self.db.clone();
        let key = uuid.clone();
        let fut = async move { execute(&db, &key, &op).await.map(|count| (op, count)) }
            .into_actor(self)
            .map(move |res, act, ctx| act.written(uuid, res, 0, ctx));
        ctx.spawn(fut);
    }

    fn notify_if_idle(&mut self) {
        if !self.flush_waiters.is_empty() && self.idle() {
            for waiter in self.flush_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn written(
        &mut self,
        uuid: Arc<str>,
        res: Result<(Op, Option<i32>), sea_orm::DbErr>,
        retries: u32,
        ctx: &mut Context<Self>,
    ) {
        let threshold = self.threshold;
        let Some(state) = self.subs.get_mut(&uuid) else {
            return;
        };
        match res {
            Ok((op, count)) => {
                state.ops.pop_front();
                state.writing = false;
                match op {
                    Op::Success(_) => {}
                    Op::Failure { .. } => {
                        // The shared count (other workers' failures included), plus
                        // this worker's failures not yet written.
                        let pending = state
                            .ops
                            .iter()
                            .filter(|o| matches!(o, Op::Failure { .. }))
                            .count() as i32;
                        if let Some(count) = count {
                            state.failures = count + pending;
                        }
                        if !state.tripped && state.failures >= threshold {
                            self.trip(&uuid, 0);
                        }
                    }
                    Op::Trip { ts, failures } => self.announce_trip(&uuid, ts, failures),
                    Op::Note { .. } => {}
                }
                self.write_next(uuid, ctx);
            }
            Err(e) => {
                let backoff = Duration::from_millis(100 * 2u64.saturating_pow(retries.min(10)))
                    .min(MAX_BACKOFF);
                if retries == 0 {
                    tracing::warn!(subscription = %uuid, error = %crate::error::redact_db_error(&e), "state write failed; retrying");
                }
                let Some(op) = state.ops.front().cloned() else {
                    state.writing = false;
                    return;
                };
                let db = self.db.clone();
                let key = uuid.clone();
                let fut = async move {
                    tokio::time::sleep(backoff).await;
                    execute(&db, &key, &op).await.map(|count| (op, count))
                }
                .into_actor(self)
                .map(move |res, act, ctx| act.written(uuid, res, retries + 1, ctx));
                ctx.spawn(fut);
            }
        }
    }

    /// Stop the subscription now; the trip is written after the writes before it
    /// (at `position` in the queue) and announced once written.
    fn trip(&mut self, uuid: &Arc<str>, position: usize) {
        let Some(state) = self.subs.get_mut(uuid) else {
            return;
        };
        state.tripped = true;
        crate::metrics::global().circuit_tripped(uuid);
        let op = Op::Trip {
            ts: Utc::now(),
            failures: state.failures,
        };
        let at = position.min(state.ops.len());
        state.ops.insert(at, op);
        if let Some(sup) = &self.supervisor {
            sup.do_send(Tripped { uuid: uuid.clone() });
        }
    }

    fn announce_trip(&mut self, uuid: &Arc<str>, ts: DateTime<Utc>, failures: i32) {
        let name = self
            .subs
            .get(uuid)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "".into());
        tracing::warn!(subscription = %uuid, name = %name, failures, "circuit tripped; subscription disabled");
        let bus = self.bus.clone();
        let body = serde_json::json!({
            "uuid": uuid.as_ref(),
            "name": name.as_ref(),
            "failures": failures,
            "ts": crate::domain::event::iso(ts),
        });
        actix::spawn(async move {
            bus.publish_json(CIRCUIT_TRIPPED, &body).await;
        });
    }

    /// Turn coalesced success stamps into writes.
    fn flush_successes(&mut self, ctx: &mut Context<Self>) {
        let dirty: Vec<(Arc<str>, DateTime<Utc>)> = self
            .subs
            .iter_mut()
            .filter_map(|(k, s)| s.dirty_success.take().map(|ts| (k.clone(), ts)))
            .collect();
        for (uuid, ts) in dirty {
            // A success still waiting behind a write takes the newer stamp: one write.
            if let Some(state) = self.subs.get_mut(&uuid) {
                if state.ops.len() > usize::from(state.writing) {
                    if let Some(Op::Success(waiting)) = state.ops.back_mut() {
                        *waiting = ts;
                        continue;
                    }
                }
            }
            self.enqueue(&uuid, Op::Success(ts), ctx);
        }
    }

    fn idle(&self) -> bool {
        self.subs
            .values()
            .all(|s| s.ops.is_empty() && !s.writing && s.dirty_success.is_none())
    }
}

/// One write; a failure returns the new count.
async fn execute(
    db: &DatabaseConnection,
    uuid: &str,
    op: &Op,
) -> Result<Option<i32>, sea_orm::DbErr> {
    match op {
        Op::Success(ts) => repo::record_webhook_success(db, uuid, *ts)
            .await
            .map(|_| None),
        Op::Failure { ts, error, .. } => repo::record_webhook_failure(db, uuid, *ts, error)
            .await
            .map(Some),
        Op::Trip { ts, .. } => repo::trip_webhook_circuit(db, uuid, *ts)
            .await
            .map(|_| None),
        Op::Note { ts, error } => repo::record_webhook_problem(db, uuid, *ts, error)
            .await
            .map(|()| None),
    }
}

impl Actor for CircuitActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SUCCESS_FLUSH, |act, ctx| act.flush_successes(ctx));
    }
}

impl Handler<Report> for CircuitActor {
    type Result = bool;

    fn handle(&mut self, msg: Report, ctx: &mut Self::Context) -> bool {
        // Not the receiver's doing: neither a failure nor a success of its own.
        if msg.outcome.failure == Some(FailureKind::Local) {
            return self.subs.get(&msg.uuid).is_some_and(|s| s.tripped);
        }
        let state = self.subs.entry(msg.uuid.clone()).or_default();
        state.name = msg.name.clone();
        if state.tripped {
            return true;
        }
        let ts = Utc::now();
        if msg.outcome.ok() {
            // With no failure counted, the shared count is zero or its reset is already
            // queued: coalesce, even while a write is in flight (else every success of
            // a busy subscription became a write of its own).
            if state.failures == 0 {
                state.dirty_success = Some(ts);
            } else {
                // Reset the shared count at once: other workers count on it.
                state.dirty_success = None;
                state.failures = 0;
                self.enqueue(&msg.uuid, Op::Success(ts), ctx);
            }
            return false;
        }
        // A pending success happened before this failure: write it first.
        let earlier = state.dirty_success.take();
        state.failures += 1;
        let failures = state.failures;
        if let Some(earlier) = earlier {
            self.enqueue(&msg.uuid, Op::Success(earlier), ctx);
        }
        let error = msg
            .outcome
            .error
            .clone()
            .unwrap_or_else(|| "delivery failed".into());
        let trip_now = msg.outcome.gone || failures >= self.threshold;
        self.enqueue(&msg.uuid, Op::Failure { ts, error }, ctx);
        // Counted here first, so the breaker works (and stops consumption at once)
        // even while the database is away; the written count corrects it after.
        if trip_now {
            let after = self.subs.get(&msg.uuid).map_or(0, |s| s.ops.len());
            self.trip(&msg.uuid, after);
            self.write_next(msg.uuid.clone(), ctx);
        }
        trip_now
    }
}

impl Handler<ResetCircuit> for CircuitActor {
    type Result = ();

    fn handle(&mut self, msg: ResetCircuit, _ctx: &mut Self::Context) {
        let state = self.subs.entry(msg.uuid).or_default();
        state.tripped = false;
        state.failures = 0;
        state.dirty_success = None;
        // Writes already queued stay (they happened); a trip of the old life does not.
        state.ops.retain(|op| !matches!(op, Op::Trip { .. }));
    }
}

impl Handler<Note> for CircuitActor {
    type Result = ();

    fn handle(&mut self, msg: Note, ctx: &mut Self::Context) {
        // A success still coalesced happened before: written first, so the note is
        // what the row shows.
        let state = self.subs.entry(msg.uuid.clone()).or_default();
        let earlier = state.dirty_success.take();
        if let Some(earlier) = earlier {
            self.enqueue(&msg.uuid, Op::Success(earlier), ctx);
        }
        let op = Op::Note {
            ts: Utc::now(),
            error: msg.error,
        };
        self.enqueue(&msg.uuid, op, ctx);
    }
}

impl Handler<Flush> for CircuitActor {
    type Result = ResponseActFuture<Self, ()>;

    /// Answers once every pending write is done, or after `FLUSH_WAIT`.
    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        self.flush_successes(ctx);
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        self.notify_if_idle();
        Box::pin(
            async move {
                let _ = tokio::time::timeout(FLUSH_WAIT, rx).await;
            }
            .into_actor(self),
        )
    }
}
