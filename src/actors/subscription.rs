//! SubscriptionActor: one per enabled subscription. Owns its PatternActors, a bounded
//! queue and an in-flight cap, so a dead receiver fills only its own budget.
//!
//! If it ever stops without being drained (a handler panicked: the runtime drops the
//! actor's task and carries on with the others, and actix runs `stopped` on the way
//! out), it settles what it held (queued, rendering and in-flight events) and tells
//! the supervisor, which restarts it.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{
    fut::wrap_future, Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler,
    Message, Recipient, ResponseActFuture, WrapFuture,
};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    circuit::Report,
    delivery::{Deliver, DeliveryPool},
    journal::{JournalActor, RecordAttempts, RecordDeadLetter},
    ledger::{Account, Place},
    pattern::{Incoming, PatternActor, StopPattern},
    schedule::{queued_cost, Full, Next, QueueLimits, Schedule},
    spec::{DeliveryOptions, SubscriptionSpec},
    stats::WorkerStats,
};
use crate::{
    bus::{Acker, PatternSource},
    db::dead_letters::Reason,
    delivery::{Attempt, DeliveryOutcome, FailureKind, ItemFailure, Target},
    domain::Event,
    filter::{Filter, FilterError},
    shape::{self, sandbox::Sandbox, Batching, Shape, ShapeError},
};

/// Delivery-log rows sent to the journal in one message, at most…
const LOG_BATCH: usize = 256;
/// …or this long after the first of them.
const LOG_LINGER: Duration = Duration::from_millis(100);

/// Stop consuming, let in-flight deliveries finish (bounded), then stop.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Drain(pub DrainReason);

/// Why a subscription stops, which decides what becomes of its queued events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainReason {
    /// Deleted or paused by an operator: queued events are dropped.
    Removed,
    /// Its patterns changed: the queue is still delivered, then it stops.
    Restarted,
    /// Its circuit tripped: queued events are dead-lettered.
    Tripped,
    /// The worker stops: queued events are dead-lettered for replay.
    Shutdown,
}

/// A subscription is consuming: every pattern is subscribed on the bus server.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Ready {
    pub uuid: Arc<str>,
}

/// Limits of one subscription.
#[derive(Clone, Debug)]
pub struct Budget {
    pub max_inflight: usize,
    pub queue: QueueLimits,
    /// How long a drain waits for in-flight deliveries.
    pub drain_timeout: Duration,
}

/// Replace URL, secret or name without touching the streams.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateTarget(pub Arc<SubscriptionSpec>);

/// A subscription actor stopped without being drained.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Exited {
    pub uuid: Arc<str>,
    /// Which start of the subscription this was (the supervisor's count).
    pub generation: u64,
    /// What stopped it: the panic's message when there was one.
    pub cause: String,
    /// Events it held, dead-lettered (or handed back to the stream, durable mode).
    pub held: usize,
}

/// Make the actor panic in its handler, as a bug would.
#[cfg(test)]
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Fail;

pub struct SubscriptionActor {
    spec: Arc<SubscriptionSpec>,
    target: Arc<Target>,
    budget: Budget,
    source: PatternSource,
    pool: DeliveryPool,
    circuit: Recipient<Report>,
    stats: Arc<WorkerStats>,
    /// Where a template shape renders (`with_templates`).
    templates: Option<Sandbox>,
    on_ready: Option<Recipient<Ready>>,
    /// Told (with this start's generation) if the actor stops without a drain.
    on_exit: Option<(Recipient<Exited>, u64)>,
    journal: Option<Recipient<RecordDeadLetter>>,
    attempt_log: Option<Recipient<RecordAttempts>>,
    /// Delivery-log rows not yet sent to the journal, and whether a timer will send
    /// them: one message carries many deliveries.
    log_rows: Vec<crate::db::delivery_log::LogRow>,
    log_timer: bool,
    patterns: Vec<Addr<PatternActor>>,
    schedule: Schedule<Incoming>,
    /// The shape of `spec.options`, or why it cannot be built (each event then
    /// dead-letters with that error).
    shape: Result<Shape, String>,
    /// When a timer pumps again (rate limit or batch linger).
    wake: Option<Instant>,
    /// Stream sequences seen lately (durable mode): overlapping patterns each get a
    /// copy from their own consumer, and the receiver must get one.
    seen: HashSet<u64>,
    seen_order: VecDeque<u64>,
    /// Events being rendered or delivered, by job: their count is what is in
    /// flight, and they are what a crash must not lose.
    held: HashMap<u64, Vec<Rendered>>,
    next_job: u64,
    /// A template render is with the sandbox: one at a time per subscription, so a
    /// template that runs to its limit holds one sandbox process, not all.
    rendering: bool,
    draining: Option<DrainReason>,
    drained: Option<oneshot::Sender<()>>,
    /// It stops because it decided to (drained): any other stop is unexpected.
    stop_expected: bool,
    last_overflow_warning: Option<std::time::Instant>,
    last_local_warning: Option<std::time::Instant>,
    last_render_warning: Option<(Instant, u64)>,
    metrics: crate::metrics::SubscriptionMetrics,
    /// What became of each event it took (shared with this worker's other actors
    /// of the same subscription).
    account: Account,
    /// The spec's filter, compiled (or why it does not compile: then every event
    /// counts as a filter error).
    filter: Option<Result<Filter, FilterError>>,
    last_filter_warning: Option<(Instant, u64)>,
}

impl SubscriptionActor {
    pub fn new(
        spec: Arc<SubscriptionSpec>,
        target: Target,
        budget: Budget,
        source: PatternSource,
        pool: DeliveryPool,
        circuit: Recipient<Report>,
        stats: Arc<WorkerStats>,
    ) -> Self {
        Self {
            shape: build_shape(&spec.options),
            schedule: Schedule::new(&spec.options, budget.queue.clone(), Instant::now()),
            metrics: crate::metrics::global().subscription(&spec.uuid),
            account: stats.ledger.account(&spec.uuid),
            filter: build_filter(&spec),
            last_filter_warning: None,
            spec,
            target: Arc::new(target),
            budget,
            source,
            pool,
            circuit,
            stats,
            templates: None,
            on_ready: None,
            on_exit: None,
            journal: None,
            attempt_log: None,
            log_rows: Vec::new(),
            log_timer: false,
            patterns: Vec::new(),
            wake: None,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            held: HashMap::new(),
            next_job: 0,
            rendering: false,
            draining: None,
            drained: None,
            stop_expected: false,
            last_overflow_warning: None,
            last_local_warning: None,
            last_render_warning: None,
        }
    }

    /// Tell `to` once every pattern is subscribed on the bus server.
    pub fn report_ready_to(mut self, to: Recipient<Ready>) -> Self {
        self.on_ready = Some(to);
        self
    }

    /// Render a template shape in `templates`.
    pub fn with_templates(mut self, templates: Sandbox) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Tell `to` if this actor stops without being drained; `generation` tells this
    /// start from a later one.
    pub fn report_exit_to(mut self, to: Recipient<Exited>, generation: u64) -> Self {
        self.on_exit = Some((to, generation));
        self
    }

    /// Keep failed-for-good deliveries in the dead-letter store.
    /// and every attempt in the delivery log.
    pub fn with_journal(mut self, journal: Addr<JournalActor>) -> Self {
        self.attempt_log = Some(journal.clone().recipient());
        self.journal = Some(journal.recipient());
        self
    }

    /// Dead-letter `event`, which was `from` (queued, in flight) or just arrived.
    fn dead_letter(
        &self,
        from: Option<Place>,
        event: &Event,
        ack: Option<Acker>,
        reason: Reason,
        outcome: Option<&DeliveryOutcome>,
    ) {
        self.account.step(from, Place::DeadLettered(reason));
        if let Some(journal) = &self.journal {
            journal.do_send(RecordDeadLetter {
                subscription: self.spec.uuid.clone(),
                event_id: event.id.clone(),
                topic: event.topic.clone(),
                body: event.body.clone(),
                reason,
                error: outcome.and_then(|o| o.error.clone()),
                status: outcome.and_then(|o| o.status),
                attempts: outcome.map_or(0, |o| o.attempts),
                ack,
            });
        }
    }

    /// Settle an event this worker will not handle at shutdown: durable ones go back
    /// to the stream for the next worker, the rest to the dead-letter store.
    fn hand_back(
        &self,
        from: Option<Place>,
        event: &Event,
        ack: Option<Acker>,
        outcome: Option<&DeliveryOutcome>,
    ) {
        match ack {
            Some(ack) => {
                self.account.step(from, Place::Released);
                ack.nak()
            }
            None => self.dead_letter(from, event, None, Reason::Shutdown, outcome),
        }
    }

    /// Settle an event held when the actor stopped unexpectedly: durable ones go
    /// back to the stream (the restarted actor gets them again), the rest to the
    /// dead-letter store.
    fn settle_crashed(&self, from: Place, event: &Event, ack: Option<Acker>, error: &str) {
        match ack {
            Some(ack) => {
                self.account.moved(from, Place::Released, 1);
                ack.nak()
            }
            None => {
                let outcome =
                    DeliveryOutcome::not_attempted(FailureKind::NonRetryable, error.to_owned());
                self.dead_letter(Some(from), event, None, Reason::Crashed, Some(&outcome));
            }
        }
    }

    /// Whether this stream sequence was already taken (and remember it).
    fn seen_before(&mut self, seq: u64) -> bool {
        const REMEMBER: usize = 65_536;
        if !self.seen.insert(seq) {
            return true;
        }
        self.seen_order.push_back(seq);
        if self.seen_order.len() > REMEMBER {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        false
    }

    /// Shape each event and deliver: templates through the sandbox (awaited off
    /// this thread), the other shapes here.
    fn dispatch(&mut self, items: Vec<Incoming>, ctx: &mut Context<Self>) {
        self.account
            .moved(Place::Queued, Place::InFlight, items.len() as u64);
        match &self.shape {
            Ok(Shape::Template(source)) => {
                let source = source.clone();
                self.render_in_sandbox(source, items, ctx);
            }
            _ => {
                let rendered = self.render_here(items);
                self.send(rendered, ctx);
            }
        }
    }

    /// Render each event in its (non-template) shape; a failure dead-letters that
    /// event alone.
    fn render_here(&mut self, items: Vec<Incoming>) -> Vec<Rendered> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let rendered = match &self.shape {
                Ok(shape) if shape.is_raw() => Ok(item.event.clone()),
                Ok(shape) => full_event(&item.event).and_then(|event| {
                    shape
                        .render(&event)
                        .map(|body| shaped(&event, body))
                        .map_err(|e| e.to_string())
                }),
                Err(e) => Err(e.clone()),
            };
            match rendered {
                Ok(sent) => out.push(Rendered {
                    sent,
                    ack: item.ack,
                }),
                Err(error) => self.render_failed(&item.event, item.ack, error),
            }
        }
        out
    }

    /// Render `items` with the template in the sandbox, then deliver what rendered.
    /// The events stay held meanwhile (and count as in flight).
    fn render_in_sandbox(
        &mut self,
        source: Arc<str>,
        items: Vec<Incoming>,
        ctx: &mut Context<Self>,
    ) {
        let envelopes: Vec<Bytes> = items.iter().map(|i| i.event.body.clone()).collect();
        let job = self.hold(
            items
                .into_iter()
                .map(|i| Rendered {
                    sent: i.event,
                    ack: i.ack,
                })
                .collect(),
        );
        self.rendering = true;
        let templates = self.templates.clone();
        let fut = wrap_future::<_, Self>(async move {
            match templates {
                Some(templates) => templates.render(&source, &envelopes).await,
                None => Err(ShapeError::Unavailable("no template sandbox".into())),
            }
        })
        .map(move |result, act, ctx| {
            act.rendering = false;
            if let Some(items) = act.held.remove(&job) {
                let rendered = act.settle_render(items, result);
                act.send(rendered, ctx);
            }
            act.pump(ctx);
        });
        ctx.spawn(fut);
    }

    /// Pair each event with its rendered body; what did not render is dead-lettered.
    fn settle_render(
        &mut self,
        items: Vec<Rendered>,
        result: Result<Vec<Result<Bytes, ShapeError>>, ShapeError>,
    ) -> Vec<Rendered> {
        let results: Vec<Result<Bytes, ShapeError>> = match result {
            Ok(results) => results,
            Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out = Vec::with_capacity(items.len());
        for (item, result) in items.into_iter().zip(results) {
            match result {
                Ok(body) => out.push(Rendered {
                    sent: shaped(&item.sent, body),
                    ack: item.ack,
                }),
                Err(e) => self.render_failed(&item.sent, item.ack, e.to_string()),
            }
        }
        out
    }

    /// Dead-letter an event that did not render; said at most every 10 s (an
    /// attacker's events may fail one after another).
    fn render_failed(&mut self, event: &Event, ack: Option<Acker>, error: String) {
        let now = Instant::now();
        match &mut self.last_render_warning {
            Some((at, quiet)) if now.duration_since(*at) < Duration::from_secs(10) => *quiet += 1,
            _ => {
                let quiet = self.last_render_warning.map_or(0, |(_, n)| n);
                self.last_render_warning = Some((now, 0));
                tracing::warn!(subscription = %self.spec.uuid, event_id = %event.id, %error, also_failed = quiet, "cannot render the event in this subscription's shape; dead-lettered");
            }
        }
        let outcome = DeliveryOutcome::not_attempted(FailureKind::NonRetryable, error);
        self.dead_letter(
            Some(Place::InFlight),
            event,
            ack,
            Reason::RenderFailed,
            Some(&outcome),
        );
    }

    /// Keep `items` as one job in flight; its id.
    fn hold(&mut self, items: Vec<Rendered>) -> u64 {
        let job = self.next_job;
        self.next_job = self.next_job.wrapping_add(1);
        self.held.insert(job, items);
        job
    }

    /// POST shaped events: one, or several as one batch (several batches when the
    /// receiver caps a request's size), and settle them on the outcome.
    fn send(&mut self, items: Vec<Rendered>, ctx: &mut Context<Self>) {
        let (batching, limit) = match &self.shape {
            Ok(shape) => (shape.batching(), shape.max_request_bytes()),
            Err(_) => (Batching::EventsObject, None),
        };
        let Some(limit) = limit else {
            return self.send_one(items, batching, ctx);
        };
        let mut chunk: Vec<Rendered> = Vec::new();
        let mut size = 2;
        for item in items {
            let len = item.sent.body.len() + 1;
            if len + 2 > limit {
                let outcome = DeliveryOutcome::not_attempted(
                    FailureKind::NonRetryable,
                    format!(
                        "the event is {} bytes as shaped; the receiver takes at most {limit} per request",
                        item.sent.body.len()
                    ),
                );
                let from = Some(Place::InFlight);
                self.dead_letter(
                    from,
                    &item.sent,
                    item.ack,
                    Reason::NonRetryable,
                    Some(&outcome),
                );
                continue;
            }
            if size + len > limit && !chunk.is_empty() {
                self.send_one(std::mem::take(&mut chunk), batching, ctx);
                size = 2;
            }
            size += len;
            chunk.push(item);
        }
        self.send_one(chunk, batching, ctx);
    }

    /// POST one request of `items`.
    fn send_one(&mut self, items: Vec<Rendered>, batching: Batching, ctx: &mut Context<Self>) {
        let event = match items.as_slice() {
            [] => return,
            [one] if self.spec.options.batch_max <= 1 => one.sent.clone(),
            many => {
                let bodies: Vec<&[u8]> = many.iter().map(|r| &r.sent.body[..]).collect();
                let mut batch = Event::outgoing(
                    uuid::Uuid::now_v7().to_string(),
                    crate::domain::event::BATCH_TOPIC.to_owned(),
                    shape::join(batching, &bodies),
                );
                // A request has one parent: the first event's trace.
                batch.trace = many[0].sent.trace.clone();
                if batching == Batching::Concatenated {
                    // The items, so the ones a receiver refuses can be told apart.
                    batch.parts = Some(many.iter().map(|r| r.sent.body.clone()).collect());
                }
                Arc::new(batch)
            }
        };
        let job = self.hold(items);
        let pool = self.pool.clone();
        let msg = Deliver {
            target: self.target.clone(),
            event: event.clone(),
        };
        let fut = wrap_future::<_, Self>(async move { pool.deliver(msg).await }).map(
            move |res, act, ctx| {
                let items = act.held.remove(&job).unwrap_or_default();
                let mut outcome = res.unwrap_or_else(|e| pool_failure(&e));
                act.stats.record_delivery(outcome.ok());
                act.metrics.delivered(&outcome);
                let attempts = std::mem::take(&mut outcome.attempt_log);
                act.log_attempts(&event.id, attempts, ctx);
                let ok = outcome.ok();
                if ok {
                    let mut refused = outcome.item_failures.iter().peekable();
                    let mut delivered = 0u64;
                    for (i, item) in items.into_iter().enumerate() {
                        match refused.next_if(|f| f.index == i) {
                            // Refused alone while the rest went in: kept with its own error.
                            Some(failure) => {
                                let (reason, own) = item_failure(&outcome, failure);
                                let from = Some(Place::InFlight);
                                act.dead_letter(from, &item.sent, item.ack, reason, Some(&own));
                            }
                            None => {
                                delivered += 1;
                                if let Some(ack) = &item.ack {
                                    ack.ack();
                                }
                            }
                        }
                    }
                    act.account
                        .moved(Place::InFlight, Place::Delivered, delivered);
                } else if outcome.failure == Some(FailureKind::Shutdown)
                    || (outcome.failure == Some(FailureKind::Local)
                        && act.draining == Some(DrainReason::Shutdown))
                {
                    // Cut short by shutdown: as the rest of the queue, handed back.
                    for item in items {
                        let from = Some(Place::InFlight);
                        act.hand_back(from, &item.sent, item.ack, Some(&outcome));
                    }
                } else {
                    if outcome.failure == Some(FailureKind::Local) {
                        act.warn_local_failure(&outcome, &event.id, items.len());
                    }
                    // A batch fails whole; each event is kept with the bytes it would
                    // have been sent as, so a replay posts them one by one.
                    let reason = dead_letter_reason(outcome.failure);
                    let mut own_errors = outcome.item_failures.iter().peekable();
                    for (i, item) in items.into_iter().enumerate() {
                        let from = Some(Place::InFlight);
                        match own_errors.next_if(|f| f.index == i) {
                            Some(failure) => {
                                let (reason, own) = item_failure(&outcome, failure);
                                act.dead_letter(from, &item.sent, item.ack, reason, Some(&own));
                            }
                            None => {
                                act.dead_letter(from, &item.sent, item.ack, reason, Some(&outcome))
                            }
                        }
                    }
                }
                let report = Report {
                    uuid: act.spec.uuid.clone(),
                    name: act.spec.name.clone(),
                    outcome,
                };
                if ok {
                    act.circuit.do_send(report);
                    act.pump(ctx);
                } else {
                    // Wait for the verdict: a tripped circuit must not start another.
                    let verdict = act.circuit.send(report);
                    ctx.wait(wrap_future::<_, Self>(verdict).map(|tripped, act, ctx| {
                        if tripped.unwrap_or(false) && act.draining.is_none() {
                            ctx.notify(Drain(DrainReason::Tripped));
                        } else {
                            act.pump(ctx);
                        }
                    }));
                }
            },
        );
        ctx.spawn(fut);
    }

    /// Keep the attempts of one delivery for the delivery log; they go to the
    /// journal at `LOG_BATCH` rows, or `LOG_LINGER` after the first one waits.
    fn log_attempts(&mut self, event_id: &str, attempts: Vec<Attempt>, ctx: &mut Context<Self>) {
        if self.attempt_log.is_none() || attempts.is_empty() {
            return;
        }
        if self.log_rows.capacity() == 0 {
            // Taken whole when sent, so an idle subscription holds no buffer.
            self.log_rows.reserve(LOG_BATCH);
        }
        crate::delivery::log_rows(&self.spec.uuid, event_id, attempts, &mut self.log_rows);
        if self.log_rows.len() >= LOG_BATCH {
            self.send_log();
        } else if !self.log_timer {
            self.log_timer = true;
            ctx.run_later(LOG_LINGER, |act, _ctx| {
                act.log_timer = false;
                act.send_log();
            });
        }
    }

    fn send_log(&mut self) {
        if let (Some(log), false) = (&self.attempt_log, self.log_rows.is_empty()) {
            log.do_send(RecordAttempts {
                rows: std::mem::take(&mut self.log_rows),
            });
        }
    }

    /// Deliveries this subscription may have in flight.
    fn max_inflight(&self) -> usize {
        if self.spec.options.ordered {
            1
        } else {
            self.budget.max_inflight
        }
    }

    /// Start queued deliveries while there is room in flight and the schedule lets
    /// them go (batch full or lingered, rate-limit token).
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.held.len() < self.max_inflight() && !self.rendering {
            match self.schedule.next(Instant::now, self.draining.is_some()) {
                Next::Send(items) => self.dispatch(items, ctx),
                Next::Wait(wait) => {
                    self.wake_at(wait, ctx);
                    break;
                }
                Next::Idle => break,
            }
        }
        self.metrics
            .set_load(self.schedule.len(), self.schedule.bytes(), self.held.len());
        if self.held.is_empty() && self.schedule.is_empty() && self.draining.is_some() {
            if let Some(done) = self.drained.take() {
                let _ = done.send(());
            }
            self.stop_expected = true;
            ctx.stop();
        }
    }

    /// Pump again after `wait`, unless a timer due sooner is already set.
    fn wake_at(&mut self, wait: Duration, ctx: &mut Context<Self>) {
        let due = Instant::now() + wait;
        if self.wake.is_some_and(|set| set <= due) {
            return;
        }
        self.wake = Some(due);
        ctx.run_later(wait, move |act, ctx| {
            if act.wake == Some(due) {
                act.wake = None;
            }
            act.pump(ctx);
        });
    }

    fn stop_patterns(&mut self) {
        for p in self.patterns.drain(..) {
            p.do_send(StopPattern);
        }
    }
}

impl Actor for SubscriptionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address().recipient::<Incoming>();
        let group = self.spec.queue_group();
        // Futures given to `ctx.wait` run last-given first: this one, given first,
        // runs after every pattern's subscription below (a durable consumer must
        // exist before the subscription reports ready).
        let source = self.source.clone();
        ctx.wait(
            async move { source.flush().await }
                .into_actor(self)
                .map(|_, act, _ctx| {
                    if let Some(to) = act.on_ready.take() {
                        to.do_send(Ready {
                            uuid: act.spec.uuid.clone(),
                        });
                    }
                }),
        );
        for pattern in self.spec.patterns.clone() {
            let source = self.source.clone();
            let group = group.clone();
            let me = me.clone();
            let stats = self.stats.clone();
            let uuid = self.spec.uuid.clone();
            let fut = async move {
                source
                    .subscribe(&pattern, &group)
                    .await
                    .map(|s| (pattern, s))
            }
            .into_actor(self)
            .map(move |res, act, _ctx| match res {
                Ok((pattern, stream)) if act.draining.is_none() => {
                    let mut actor = PatternActor::new(pattern, stream, me, stats)
                        .with_account(act.account.clone());
                    if let Some(journal) = &act.journal {
                        actor = actor.with_dead_letters(uuid.clone(), journal.clone());
                    }
                    act.patterns.push(actor.start());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(subscription = %uuid, error = %e, "cannot subscribe to the bus")
                }
            });
            // `wait`: no event is handled before every pattern is subscribed.
            ctx.wait(fut);
        }
        self.schedule_secret_expiry(ctx);
        tracing::debug!(subscription = %self.spec.uuid, name = %self.spec.name, patterns = ?self.spec.patterns, "subscription started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Timers die with the actor: what the log holds goes now.
        self.send_log();
        self.stop_patterns();
        if !self.stop_expected {
            self.stopped_unexpectedly();
        } else {
            // A drain that timed out leaves deliveries whose outcome never comes
            // back here: released (durable ones stay unacknowledged, redelivered).
            let held: usize = self.held.drain().map(|(_, items)| items.len()).sum();
            self.account
                .moved(Place::InFlight, Place::Released, held as u64);
        }
        tracing::debug!(subscription = %self.spec.uuid, "subscription stopped");
    }
}

impl SubscriptionActor {
    /// It stops without having decided to: a handler panicked (the runtime dropped
    /// its task, and actix stops an actor it drops), or the runtime itself is going
    /// away. Nothing it held may vanish silently: queued, rendering and in-flight
    /// events are dead-lettered (handed back to the stream in durable mode), and
    /// the supervisor is told.
    fn stopped_unexpectedly(&mut self) {
        let cause = crate::telemetry::take_panic()
            .unwrap_or_else(|| "stopped without being drained".to_owned());
        let queued = self.schedule.take_all();
        let held: Vec<Rendered> = self.held.drain().flat_map(|(_, items)| items).collect();
        let count = queued.len() + held.len();
        let waiting =
            format!("the subscription stopped unexpectedly ({cause}) with this event queued");
        for item in queued {
            self.settle_crashed(Place::Queued, &item.event, item.ack, &waiting);
        }
        let in_flight = format!(
            "the subscription stopped unexpectedly ({cause}) while this event was being \
             shaped or delivered; it may have reached the receiver"
        );
        for item in held {
            self.settle_crashed(Place::InFlight, &item.sent, item.ack, &in_flight);
        }
        self.metrics.set_load(0, 0, 0);
        if let Some((to, generation)) = self.on_exit.take() {
            to.do_send(Exited {
                uuid: self.spec.uuid.clone(),
                generation,
                cause,
                held: count,
            });
        }
    }
}

#[cfg(test)]
impl Handler<Fail> for SubscriptionActor {
    type Result = ();

    fn handle(&mut self, _: Fail, _ctx: &mut Self::Context) {
        panic!("injected failure");
    }
}

impl Handler<Incoming> for SubscriptionActor {
    type Result = ();

    fn handle(&mut self, item: Incoming, ctx: &mut Self::Context) {
        if let Some(seq) = item.seq {
            if self.seen_before(seq) {
                if let Some(ack) = &item.ack {
                    ack.ack();
                }
                return;
            }
        }
        // Events already in the mailbox when a drain began follow the drain's rule.
        match self.draining {
            // Durable ones stay unacknowledged: redelivered if it comes back.
            Some(DrainReason::Removed) => return self.account.received(Place::Released, 1),
            Some(DrainReason::Tripped) => {
                let reason = Reason::CircuitTripped;
                return self.dead_letter(None, &item.event, item.ack, reason, None);
            }
            Some(DrainReason::Shutdown) => {
                return self.hand_back(None, &item.event, item.ack, None)
            }
            Some(DrainReason::Restarted) | None => {}
        }
        if !self.passes_filter(&item) {
            if let Some(ack) = &item.ack {
                ack.ack();
            }
            return;
        }
        let item = self.slim_if_waiting(item);
        let cost = queued_cost(&item.event);
        match self.schedule.push(item, cost, Instant::now()) {
            Ok(()) => {
                self.account.received(Place::Queued, 1);
                self.pump(ctx)
            }
            Err((item, full)) => self.overflow(item, full),
        }
    }
}

impl SubscriptionActor {
    /// The queue is full (`full` says which limit): the event is dead-lettered, and
    /// said so at most every 10 s.
    fn overflow(&mut self, item: Incoming, full: Full) {
        let total = self.stats.record_overflow();
        let event_id = item.event.id.clone();
        self.dead_letter(None, &item.event, item.ack, Reason::QueueOverflow, None);
        if self
            .last_overflow_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last_overflow_warning = Some(Instant::now());
            tracing::warn!(
                subscription = %self.spec.uuid,
                name = %self.spec.name,
                %event_id,
                limit = full.as_str(),
                queued = self.schedule.len(),
                queued_bytes = self.schedule.bytes(),
                all_queues_bytes = self.budget.queue.total.used(),
                overflow_total = total,
                "subscription queue full; event dead-lettered"
            );
        }
    }

    /// An event that will wait in the queue keeps only what goes on the wire (id,
    /// topic, body) when the shape needs no more: its decoded payload (a tree several
    /// times the body's size for small events) is let go, so a burst costs little more
    /// than its bodies. An event that goes out at once stays shared as it is.
    fn slim_if_waiting(&self, item: Incoming) -> Incoming {
        let waits = !self.schedule.is_empty() || self.held.len() >= self.max_inflight();
        let wire_only = matches!(&self.shape, Ok(shape) if shape.is_raw())
            || matches!(&self.shape, Ok(Shape::Template(_)));
        if !waits || !wire_only || is_slim(&item.event) {
            return item;
        }
        let e = &item.event;
        Incoming {
            event: Arc::new(
                Event::outgoing(e.id.clone(), e.topic.clone(), e.body.clone())
                    .with_trace(e.trace.clone()),
            ),
            ..item
        }
    }

    /// Whether the filter (if any) passes `item`; an event it does not pass, or
    /// fails on, is counted as filtered here.
    fn passes_filter(&mut self, item: &Incoming) -> bool {
        let verdict = match &self.filter {
            None => return true,
            Some(Ok(filter)) => filter.matches(&item.event),
            Some(Err(e)) => Err(e.clone()),
        };
        match verdict {
            Ok(true) => return true,
            Ok(false) => self.account.received(Place::Filtered, 1),
            Err(error) => {
                self.account.received(Place::FilterError, 1);
                self.warn_filter_error(&item.event.id, &error);
            }
        }
        false
    }

    /// Said at most every 10 s per subscription, with how many failed meanwhile.
    fn warn_filter_error(&mut self, event_id: &str, error: &FilterError) {
        let now = Instant::now();
        match &mut self.last_filter_warning {
            Some((at, quiet)) if now.duration_since(*at) < Duration::from_secs(10) => *quiet += 1,
            _ => {
                let quiet = self.last_filter_warning.map_or(0, |(_, n)| n);
                self.last_filter_warning = Some((now, 0));
                tracing::warn!(subscription = %self.spec.uuid, name = %self.spec.name, %event_id, %error, also_failed = quiet, "the subscription's filter failed on an event; counted as filtered, not delivered");
            }
        }
    }

    /// A delivery failed for good for lack of local resources: said at most every 10 s.
    fn warn_local_failure(&mut self, outcome: &DeliveryOutcome, event_id: &str, events: usize) {
        if self
            .last_local_warning
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.last_local_warning = Some(Instant::now());
        tracing::warn!(
            subscription = %self.spec.uuid,
            name = %self.spec.name,
            %event_id,
            events,
            error = outcome.error.as_deref().unwrap_or_default(),
            "delivery failed for lack of local resources; dead-lettered as local_failure, \
             not counted against the receiver"
        );
    }

    /// At the previous secret's expiry, sign with the new one alone (no reload
    /// needed). A timer whose expiry is no longer the spec's (a later rotation or
    /// update) does nothing.
    fn schedule_secret_expiry(&mut self, ctx: &mut Context<Self>) {
        let Some(expires) = self.spec.previous_secret_expires_at else {
            return;
        };
        let delay = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
        ctx.run_later(delay, move |act, _ctx| {
            if act.spec.previous_secret_expires_at != Some(expires) {
                return;
            }
            let spec = Arc::make_mut(&mut act.spec);
            spec.previous_secret = None;
            spec.previous_secret_expires_at = None;
            if let Ok(target) = act.spec.target() {
                act.target = Arc::new(target);
                tracing::info!(subscription = %act.spec.uuid, "previous secret expired; signing with the new one alone");
            }
        });
    }
}

impl Handler<UpdateTarget> for SubscriptionActor {
    type Result = ();

    fn handle(&mut self, UpdateTarget(spec): UpdateTarget, ctx: &mut Self::Context) {
        match spec.target() {
            Ok(target) => {
                // Deliveries in flight keep the target and shape they started with.
                self.target = Arc::new(target);
                if spec.options != self.spec.options {
                    self.shape = build_shape(&spec.options);
                    self.schedule.update(&spec.options, Instant::now());
                }
                if spec.filter != self.spec.filter {
                    self.filter = build_filter(&spec);
                }
                self.spec = spec;
                self.schedule_secret_expiry(ctx);
                self.pump(ctx);
            }
            Err(e) => {
                tracing::error!(subscription = %spec.uuid, error = %e, "stored URL is invalid; keeping the previous one")
            }
        }
    }
}

impl Handler<Drain> for SubscriptionActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, Drain(reason): Drain, ctx: &mut Self::Context) -> Self::Result {
        self.stop_patterns();
        if self.draining.is_some() {
            // Already stopping (say, tripped here before the supervisor said so).
            let (tx, rx) = oneshot::channel::<()>();
            if self.drained.is_none() {
                self.drained = Some(tx);
            }
            let deadline = self.budget.drain_timeout;
            return Box::pin(
                async move {
                    let _ = tokio::time::timeout(deadline, rx).await;
                }
                .into_actor(self),
            );
        }
        self.draining = Some(reason);
        let queued: Vec<Incoming> = match reason {
            // A restart keeps delivering its queue; the new actor takes new events.
            DrainReason::Restarted => Vec::new(),
            _ => self.schedule.take_all(),
        };
        match reason {
            DrainReason::Tripped if !queued.is_empty() => {
                tracing::warn!(subscription = %self.spec.uuid, count = queued.len(), "circuit tripped; queued events dead-lettered");
                for item in queued {
                    let (from, reason) = (Some(Place::Queued), Reason::CircuitTripped);
                    self.dead_letter(from, &item.event, item.ack, reason, None);
                }
            }
            DrainReason::Shutdown if !queued.is_empty() => {
                tracing::warn!(subscription = %self.spec.uuid, count = queued.len(), "stopping; queued events handed back");
                for item in queued {
                    self.hand_back(Some(Place::Queued), &item.event, item.ack, None);
                }
            }
            DrainReason::Removed if !queued.is_empty() => {
                self.account
                    .moved(Place::Queued, Place::Released, queued.len() as u64);
                tracing::info!(subscription = %self.spec.uuid, dropped = queued.len(), "subscription removed with events queued");
            }
            _ => {}
        }
        let (tx, rx) = oneshot::channel();
        self.drained = Some(tx);
        self.pump(ctx);
        let deadline = self.budget.drain_timeout;
        Box::pin(
            async move {
                let _ = tokio::time::timeout(deadline, rx).await;
            }
            .into_actor(self)
            .map(move |_, act, ctx| {
                // A restart finishes its queue however long it takes; others stop here.
                if reason != DrainReason::Restarted {
                    act.stop_expected = true;
                    ctx.stop();
                }
            }),
        )
    }
}

/// An event as it goes on the wire (shaped), with its acknowledgement.
struct Rendered {
    sent: Arc<Event>,
    ack: Option<Acker>,
}

/// An event queued without its decoded parts (`slim_if_waiting`): a decoded event
/// always has a time.
fn is_slim(event: &Event) -> bool {
    event.ts.is_empty()
}

/// The event with its decoded parts, for a shape that reads them: a slim one is decoded
/// again from its envelope body (the shape changed while it waited).
fn full_event(event: &Arc<Event>) -> Result<Arc<Event>, String> {
    if !is_slim(event) {
        return Ok(event.clone());
    }
    Event::from_bus(
        &event.topic,
        &event.body,
        Some(&event.id),
        chrono::Utc::now(),
    )
    .map(|full| Arc::new(full.with_trace(event.trace.clone())))
    .map_err(|e| e.to_string())
}

/// An event as its shape rendered it: same id, topic and trace, the new body.
fn shaped(event: &Event, body: Bytes) -> Arc<Event> {
    Arc::new(
        Event::outgoing(event.id.clone(), event.topic.clone(), body)
            .with_trace(event.trace.clone()),
    )
}

fn build_filter(spec: &SubscriptionSpec) -> Option<Result<Filter, FilterError>> {
    spec.filter.as_deref().map(Filter::compile)
}

fn build_shape(options: &DeliveryOptions) -> Result<Shape, String> {
    options.build_shape().map_err(|e| e.to_string())
}

/// One event of a batch the receiver refused on its own: its reason, and the outcome
/// kept with it (the batch's, with the item's own error).
fn item_failure(outcome: &DeliveryOutcome, failure: &ItemFailure) -> (Reason, DeliveryOutcome) {
    let own = DeliveryOutcome {
        error: Some(failure.error.clone()),
        ..outcome.clone()
    };
    (dead_letter_reason(Some(failure.kind)), own)
}

/// Which dead-letter reason a failed delivery gets.
fn dead_letter_reason(failure: Option<FailureKind>) -> Reason {
    match failure {
        Some(FailureKind::NonRetryable) => Reason::NonRetryable,
        Some(FailureKind::Shutdown) => Reason::Shutdown,
        Some(FailureKind::Local) => Reason::LocalFailure,
        Some(FailureKind::RetriesExhausted) | None => Reason::RetriesExhausted,
    }
}

/// The pool itself failed (only at shutdown): a failed delivery, never a panic, and
/// not the receiver's doing.
fn pool_failure(e: &actix::MailboxError) -> DeliveryOutcome {
    DeliveryOutcome::not_attempted(
        FailureKind::Local,
        format!("delivery pool unavailable: {e}"),
    )
}
