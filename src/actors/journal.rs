//! JournalActor: writes dead letters and the delivery log in batches, off the hot path.
//!
//! Records are buffered and written every `FLUSH_EVERY` or at `BATCH` rows, one
//! statement per batch. While the database is away the buffer keeps growing up to
//! `MAX_BUFFERED` (dead letters are never dropped before the attempt log is).
//!
//! It also writes the worker's ledger: every `LEDGER_EVERY`, the counts of each
//! subscription that moved, one row per (worker, subscription), replaced in place.

use std::{sync::Arc, time::Duration};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use super::stats::WorkerStats;
use crate::{
    bus::Acker,
    db::{dead_letters, dead_letters::Reason, delivery_log, ledger},
};

const FLUSH_EVERY: Duration = Duration::from_millis(250);
const BATCH: usize = 500;
const MAX_BUFFERED: usize = 200_000;
/// Delivery-log rows written by one flush (one transaction).
const MAX_LOG_PER_WRITE: usize = 20 * BATCH;
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How often the ledger is written (only subscriptions whose counts moved).
const LEDGER_EVERY: Duration = Duration::from_secs(2);

/// A delivery that failed for good.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RecordDeadLetter {
    pub subscription: Arc<str>,
    pub event_id: String,
    pub topic: String,
    pub body: bytes::Bytes,
    pub reason: Reason,
    pub error: Option<String>,
    pub status: Option<u16>,
    pub attempts: u32,
    /// Acknowledged once the row is written (durable mode).
    pub ack: Option<Acker>,
}

/// Rows for the delivery log: the attempts of one delivery or, batched by the
/// sender, of many.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RecordAttempts {
    pub rows: Vec<delivery_log::LogRow>,
}

/// Write everything buffered now; answers when written (or given up for now).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct FlushJournal;

/// Write everything buffered (bounded), then stop: at shutdown no write may still be
/// running when the runtime goes away, and none starts after it.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct CloseJournal;

/// Retention of both tables.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub dead_letters: chrono::Duration,
    pub attempts: chrono::Duration,
}

pub struct JournalActor {
    db: DatabaseConnection,
    retention: Retention,
    dead: Vec<(dead_letters::NewDeadLetter, Option<Acker>)>,
    attempts: Vec<delivery_log::LogRow>,
    writing: bool,
    dropped_attempts: u64,
    waiters: Vec<oneshot::Sender<()>>,
    /// Whose ledger to write (the worker's counters).
    stats: Option<Arc<WorkerStats>>,
    reporting: bool,
    /// Told when the ledger write under way is done (the last report waits, so an
    /// older snapshot never lands after it).
    reported: Vec<oneshot::Sender<()>>,
}

impl JournalActor {
    pub fn new(db: DatabaseConnection, retention: Retention) -> Self {
        Self {
            db,
            retention,
            dead: Vec::new(),
            attempts: Vec::new(),
            writing: false,
            dropped_attempts: 0,
            waiters: Vec::new(),
            stats: None,
            reporting: false,
            reported: Vec::new(),
        }
    }

    /// Write the ledger of `stats` too.
    pub fn with_ledger(mut self, stats: Arc<WorkerStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Write the counts that moved since the last report; a failed write marks
    /// them moved again, so the next report carries them.
    fn report_ledger(&mut self, ctx: &mut Context<Self>) {
        if self.reporting {
            return;
        }
        let Some(stats) = self.stats.clone() else {
            return;
        };
        let rows = stats.ledger.take_moved();
        if rows.is_empty() {
            return;
        }
        self.reporting = true;
        let db = self.db.clone();
        let fut = async move {
            let worker = stats.ledger.worker_id().clone();
            if let Err(e) = ledger::report(&db, &worker, &rows, Utc::now()).await {
                tracing::warn!(error = %crate::error::redact_db_error(&e), subscriptions = rows.len(), "ledger not written yet; retrying");
                let uuids: Vec<String> = rows.into_iter().map(|(u, _)| u).collect();
                stats.ledger.mark_moved(&uuids);
            }
        }
        .into_actor(self)
        .map(|(), act, _ctx| {
            act.reporting = false;
            for w in act.reported.drain(..) {
                let _ = w.send(());
            }
        });
        ctx.spawn(fut);
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing {
            return;
        }
        if self.dead.is_empty() && self.attempts.is_empty() {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        self.writing = true;
        let dead: Vec<_> = self.dead.drain(..self.dead.len().min(BATCH)).collect();
        // The log is taken whole (up to a bound): draining the front of a long
        // buffer would move the rest on every write.
        let attempts = if self.attempts.len() > MAX_LOG_PER_WRITE {
            let rest = self.attempts.split_off(MAX_LOG_PER_WRITE);
            std::mem::replace(&mut self.attempts, rest)
        } else {
            std::mem::replace(&mut self.attempts, Vec::with_capacity(BATCH))
        };
        let db = self.db.clone();
        let fut = async move {
            let dead_rows: Vec<_> = dead.iter().map(|(r, _)| r.clone().into_active()).collect();
            let dead_res = dead_letters::insert_many(&db, dead_rows).await;
            let dead_back = match dead_res {
                Ok(()) => {
                    count_dead_letters(&dead);
                    // Kept for good: the bus may forget them now.
                    for ack in dead.iter().filter_map(|(_, a)| a.as_ref()) {
                        ack.ack();
                    }
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::redact_db_error(&e), count = dead.len(), "dead letters not written yet; retrying");
                    dead
                }
            };
            let attempt_res = delivery_log::insert(&db, &attempts).await;
            let attempts_back = match attempt_res {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::debug!(error = %crate::error::redact_db_error(&e), "delivery log not written yet");
                    attempts
                }
            };
            (dead_back, attempts_back)
        }
        .into_actor(self)
        .map(|(dead_back, attempts_back), act, ctx| {
            act.writing = false;
            let failed = !dead_back.is_empty() || !attempts_back.is_empty();
            // Put back what failed, ahead of what came since, keeping order.
            act.dead.splice(0..0, dead_back);
            act.attempts.splice(0..0, attempts_back);
            act.bound();
            if failed {
                // Let the database breathe; the interval retries.
                for w in act.waiters.drain(..) {
                    let _ = w.send(());
                }
            } else if act.dead.len() >= BATCH || act.attempts.len() >= BATCH || !act.waiters.is_empty() {
                act.flush(ctx);
            }
        });
        ctx.spawn(fut);
    }

    /// Keep memory bounded while the database is away: the log goes first.
    fn bound(&mut self) {
        let total = self.dead.len() + self.attempts.len();
        if total > MAX_BUFFERED {
            let excess = (total - MAX_BUFFERED).min(self.attempts.len());
            self.attempts.drain(..excess);
            self.dropped_attempts += excess as u64;
            tracing::warn!(
                dropped_total = self.dropped_attempts,
                "database away too long; oldest delivery-log rows dropped"
            );
        }
    }

    fn sweep(&self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let now = Utc::now();
        let (dl, log) = (
            now - self.retention.dead_letters,
            now - self.retention.attempts,
        );
        ctx.spawn(
            async move {
                match dead_letters::sweep(&db, dl).await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "dead letters past retention deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %crate::error::redact_db_error(&e), "dead-letter sweep failed"),
                }
                if let Err(e) = ledger::sweep_orphans(&db).await {
                    tracing::warn!(error = %crate::error::redact_db_error(&e), "ledger sweep failed");
                }
                match delivery_log::sweep(&db, log).await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "delivery log past retention deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %crate::error::redact_db_error(&e), "delivery-log sweep failed"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for JournalActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(FLUSH_EVERY, |act, ctx| act.flush(ctx));
        self.sweep(ctx);
        ctx.run_interval(SWEEP_EVERY, |act, ctx| act.sweep(ctx));
        ctx.run_interval(LEDGER_EVERY, |act, ctx| act.report_ledger(ctx));
    }
}

impl Handler<RecordDeadLetter> for JournalActor {
    type Result = ();

    fn handle(&mut self, msg: RecordDeadLetter, ctx: &mut Self::Context) {
        let ack = msg.ack.clone();
        self.dead
            .push((dead_letters::NewDeadLetter::from(msg), ack));
        self.bound();
        if self.dead.len() >= BATCH {
            self.flush(ctx);
        }
    }
}

impl Handler<RecordAttempts> for JournalActor {
    type Result = ();

    fn handle(&mut self, msg: RecordAttempts, ctx: &mut Self::Context) {
        self.attempts.extend(msg.rows);
        self.bound();
        if self.attempts.len() >= BATCH {
            self.flush(ctx);
        }
    }
}

impl Handler<FlushJournal> for JournalActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: FlushJournal, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.flush(ctx);
        Box::pin(
            async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
            }
            .into_actor(self),
        )
    }
}

impl Handler<CloseJournal> for JournalActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: CloseJournal, ctx: &mut Self::Context) -> Self::Result {
        let flushed = Handler::<FlushJournal>::handle(self, FlushJournal, ctx);
        // The last counts, after the dead letters they count are written.
        let stats = self.stats.clone();
        let db = self.db.clone();
        let under_way = self.reporting.then(|| {
            let (tx, rx) = oneshot::channel();
            self.reported.push(tx);
            rx
        });
        Box::pin(
            flushed
                .then(move |(), act, _ctx| {
                    async move {
                        if let Some(rx) = under_way {
                            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
                        }
                        let Some(stats) = stats else { return };
                        let rows = stats.ledger.take_moved();
                        let worker = stats.ledger.worker_id().clone();
                        let write = ledger::report(&db, &worker, &rows, Utc::now());
                        match tokio::time::timeout(Duration::from_secs(5), write).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::warn!(error = %crate::error::redact_db_error(&e), "last ledger counts not written"),
                            Err(_) => tracing::warn!("last ledger counts not written in time"),
                        }
                    }
                    .into_actor(act)
                })
                .map(|(), _act, ctx| actix::ActorContext::stop(ctx)),
        )
    }
}

/// Count written dead letters by reason: one labelled lookup per reason in the batch.
fn count_dead_letters(written: &[(dead_letters::NewDeadLetter, Option<Acker>)]) {
    let mut by_reason: Vec<(&str, u64)> = Vec::new();
    for (row, _) in written {
        match by_reason.iter_mut().find(|(r, _)| *r == row.reason) {
            Some((_, n)) => *n += 1,
            None => by_reason.push((&row.reason, 1)),
        }
    }
    for (reason, n) in by_reason {
        crate::metrics::global().dead_letters_written(reason, n);
    }
}

impl From<RecordDeadLetter> for dead_letters::NewDeadLetter {
    fn from(m: RecordDeadLetter) -> Self {
        Self {
            // Time-ordered, so entries of the same instant replay in arrival order.
            uuid: uuid::Uuid::now_v7().to_string(),
            subscription_uuid: m.subscription.to_string(),
            event_id: m.event_id,
            topic: m.topic,
            body: m.body.to_vec(),
            reason: m.reason.as_str().to_owned(),
            error: m.error.map(|e| crate::db::truncate_chars(&e, 512)),
            status: m.status.map(i32::from),
            attempts: i32::try_from(m.attempts).unwrap_or(i32::MAX),
            created_at: Utc::now(),
        }
    }
}
