//! SupervisorActor: converges the running SubscriptionActors on the enabled rows.
//!
//! A reload diffs desired against running: new ones start, removed ones drain, a
//! pattern change restarts one, a URL/secret/name change updates it in place, and
//! the rest keep streaming untouched.
//!
//! A subscription actor that stops without being drained (a bug made it panic) says
//! so as it stops (`Exited`); the supervisor logs it, counts it
//! (`decnet_webhook_subscription_restarts_total`), notes it on the row's
//! `last_error`, and starts it again after a back-off that doubles from 1 s to 60 s
//! while it keeps failing soon after each start.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient,
    ResponseActFuture, StreamHandler, WrapFuture,
};
use futures::stream::BoxStream;
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

use super::{
    circuit::{CircuitActor, Flush, Note, Report, ResetCircuit, Tripped},
    delivery::DeliveryPool,
    journal::{CloseJournal, JournalActor},
    spec::SubscriptionSpec,
    stats::WorkerStats,
    subscription::{Budget, Drain, DrainReason, Exited, Ready, SubscriptionActor, UpdateTarget},
};
use crate::{
    bus::{Bus, PatternSource, Signal, HEALTH},
    db::subscriptions as repo,
    shape::sandbox::Sandbox,
};

/// Re-read subscriptions and converge the running set on them.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Reload;

const HEARTBEAT: Duration = Duration::from_secs(30);

/// Back-off before restarting a subscription that stopped unexpectedly: doubles
/// from the first to the last while it keeps stopping within `STABLE` of a start.
const FIRST_RESTART: Duration = Duration::from_secs(1);
const MAX_RESTART: Duration = Duration::from_secs(60);
const STABLE: Duration = Duration::from_secs(60);

/// Stop every subscription gracefully and flush state writes.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Which subscriptions run now (uuid → patterns), and how many reloads completed.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "Status")]
pub struct GetStatus;

#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Subscriptions consuming from the bus, with their patterns.
    pub running: HashMap<String, Vec<String>>,
    /// Started but not yet subscribed on the bus server.
    pub starting: usize,
    pub reloads: u64,
    /// Subscriptions that stopped unexpectedly and wait for their restart.
    pub restarting: Vec<String>,
    /// Unexpected stops since the worker started.
    pub restarts: u64,
}

struct Running {
    /// Shared with the running actor: one copy per subscription, not two.
    spec: Arc<SubscriptionSpec>,
    addr: Addr<SubscriptionActor>,
    ready: bool,
    /// Which start this is: an exit report of an older one is not about it.
    generation: u64,
    started_at: Instant,
}

/// A subscription that stopped unexpectedly, until its restart is due.
struct Restart {
    spec: Arc<SubscriptionSpec>,
    /// Consecutive unexpected stops (each within `STABLE` of its start).
    failures: u32,
    /// The timer that restarts it; a newer stop or a reload replaces it.
    timer: u64,
}

pub struct SupervisorActor {
    db: DatabaseConnection,
    bus: Bus,
    source: PatternSource,
    pool: DeliveryPool,
    circuit: Addr<CircuitActor>,
    stats: Arc<WorkerStats>,
    budget: Budget,
    reload_every: Duration,
    signals: Option<BoxStream<'static, Signal>>,
    stop_requested: Option<mpsc::UnboundedSender<()>>,
    journal: Option<Addr<JournalActor>>,
    secrets: crate::secrets::SecretStore,
    templates: Sandbox,
    running: HashMap<Arc<str>, Running>,
    /// Stopped unexpectedly, waiting for the back-off.
    restarting: HashMap<Arc<str>, Restart>,
    /// Consecutive unexpected stops of running subscriptions (kept across a restart).
    failures: HashMap<Arc<str>, u32>,
    generations: u64,
    restarts: u64,
    me: Recipient<Ready>,
    exits: Recipient<Exited>,
    reloading: bool,
    reload_again: bool,
    stopping: bool,
    reloads: u64,
    /// Subscriptions of a large start-up still to report ready; the heap is trimmed
    /// when the last one does.
    awaiting_ready: usize,
}

pub struct SupervisorParts {
    pub db: DatabaseConnection,
    pub bus: Bus,
    pub source: PatternSource,
    pub pool: DeliveryPool,
    pub circuit: Addr<CircuitActor>,
    pub stats: Arc<WorkerStats>,
    pub budget: Budget,
    pub reload_every: Duration,
    pub signals: Option<BoxStream<'static, Signal>>,
    pub stop_requested: Option<mpsc::UnboundedSender<()>>,
    pub journal: Option<Addr<JournalActor>>,
    /// Opens the stored secrets (`DECNET_SECRET_KEY`).
    pub secrets: crate::secrets::SecretStore,
    /// Renders template shapes.
    pub templates: Sandbox,
}

impl SupervisorActor {
    /// `me` is the supervisor's own address (subscriptions report to it).
    pub fn new(p: SupervisorParts, me: Addr<Self>) -> Self {
        Self {
            db: p.db,
            bus: p.bus,
            source: p.source,
            pool: p.pool,
            circuit: p.circuit,
            stats: p.stats,
            budget: p.budget,
            reload_every: p.reload_every,
            signals: p.signals,
            stop_requested: p.stop_requested,
            journal: p.journal,
            secrets: p.secrets,
            templates: p.templates,
            running: HashMap::new(),
            restarting: HashMap::new(),
            failures: HashMap::new(),
            generations: 0,
            restarts: 0,
            me: me.clone().recipient(),
            exits: me.recipient(),
            reloading: false,
            reload_again: false,
            stopping: false,
            reloads: 0,
            awaiting_ready: 0,
        }
    }

    fn start_subscription(&mut self, spec: Arc<SubscriptionSpec>) {
        let target = match spec.target() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(subscription = %spec.uuid, error = %e, "stored URL is invalid; subscription not started");
                return;
            }
        };
        self.circuit.do_send(ResetCircuit {
            uuid: spec.uuid.clone(),
        });
        self.restarting.remove(&spec.uuid);
        self.generations += 1;
        let generation = self.generations;
        let mut actor = SubscriptionActor::new(
            spec.clone(),
            target,
            self.budget.clone(),
            self.source.clone(),
            self.pool.clone(),
            self.circuit.clone().recipient::<Report>(),
            self.stats.clone(),
        )
        .with_templates(self.templates.clone())
        .report_ready_to(self.me.clone())
        .report_exit_to(self.exits.clone(), generation);
        if let Some(journal) = &self.journal {
            actor = actor.with_journal(journal.clone());
        }
        let addr = actor.start();
        self.running.insert(
            spec.uuid.clone(),
            Running {
                spec,
                addr,
                ready: false,
                generation,
                started_at: Instant::now(),
            },
        );
    }

    /// Start a subscription that stopped unexpectedly, unless a reload stopped or
    /// restarted it since (`timer` is then stale).
    fn restart_due(&mut self, uuid: &Arc<str>, timer: u64) {
        if self.stopping || self.running.contains_key(uuid) {
            return;
        }
        match self.restarting.get(uuid) {
            Some(r) if r.timer == timer => {}
            _ => return,
        }
        if let Some(restart) = self.restarting.remove(uuid) {
            tracing::info!(subscription = %uuid, failures = restart.failures, "restarting the subscription");
            self.failures.insert(uuid.clone(), restart.failures);
            self.start_subscription(restart.spec);
        }
    }

    fn apply(&mut self, rows: Vec<entity::webhook_subscription::Model>) {
        // Secrets are opened here and nowhere else in the worker. A row whose secret
        // does not open is skipped: a running copy keeps its last good spec.
        let mut unreadable = std::collections::HashSet::new();
        let desired: HashMap<Arc<str>, Arc<SubscriptionSpec>> = rows
            .iter()
            .filter_map(|row| match SubscriptionSpec::from_row(row, &self.secrets) {
                Ok(spec) => Some(spec),
                Err(e) => {
                    tracing::error!(subscription = %row.uuid, error = %e, "cannot open the stored secret; subscription skipped");
                    unreadable.insert(row.uuid.clone());
                    None
                }
            })
            .map(|s| (s.uuid.clone(), Arc::new(s)))
            .collect();
        let (mut started, mut stopped, mut updated) = (0, 0, 0);
        let keep = |uuid: &Arc<str>| desired.contains_key(uuid) || unreadable.contains(&**uuid);
        self.running.retain(|uuid, running| {
            if !keep(uuid) {
                running.addr.do_send(Drain(DrainReason::Removed));
                stopped += 1;
            }
            keep(uuid)
        });
        // Removed while waiting for a restart: it just stays stopped.
        self.restarting.retain(|uuid, _| {
            stopped += usize::from(!keep(uuid));
            keep(uuid)
        });
        self.failures.retain(|uuid, _| keep(uuid));
        for (uuid, spec) in desired {
            match self.running.get_mut(&uuid) {
                // Waiting out its back-off: a changed row (perhaps the fix) starts it
                // now, an unchanged one waits.
                None if self.restarting.get(&uuid).is_some_and(|r| r.spec == spec) => {}
                None => {
                    if let Some(restart) = self.restarting.remove(&uuid) {
                        self.failures.insert(uuid.clone(), restart.failures);
                    }
                    self.start_subscription(spec);
                    started += 1;
                }
                Some(r) if r.spec.patterns != spec.patterns => {
                    r.addr.do_send(Drain(DrainReason::Restarted));
                    self.running.remove(&uuid);
                    self.start_subscription(spec);
                    started += 1;
                    stopped += 1;
                }
                Some(r) if r.spec != spec => {
                    r.addr.do_send(UpdateTarget(spec.clone()));
                    r.spec = spec;
                    updated += 1;
                }
                Some(_) => {}
            }
        }
        self.reloads += 1;
        crate::metrics::global().reloaded();
        if started >= crate::memory::RELEASE_AFTER_STARTS {
            self.awaiting_ready = started;
        }
        if stopped >= crate::memory::RELEASE_AFTER_STARTS {
            // Their actors, queues and bus buffers are freed once they drained.
            let drained = self.budget.drain_timeout;
            actix::spawn(async move {
                tokio::time::sleep(drained).await;
                crate::memory::release_free_heap();
            });
        }
        if self.reloads == 1 {
            tracing::info!(running = self.running.len(), "subscriptions loaded");
        } else if started + stopped + updated > 0 {
            tracing::info!(
                started,
                stopped,
                updated,
                running = self.running.len(),
                "subscriptions reloaded"
            );
        } else {
            tracing::debug!(running = self.running.len(), "reload: nothing changed");
        }
    }

    fn heartbeat(&self) {
        let bus = self.bus.clone();
        let ts = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        actix::spawn(async move {
            bus.publish_json(HEALTH, &serde_json::json!({"worker": "webhook", "ts": ts}))
                .await;
        });
    }
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(signals) = self.signals.take() {
            ctx.add_stream(signals);
        }
        ctx.notify(Reload);
        ctx.run_interval(self.reload_every, |_, ctx| ctx.notify(Reload));
        self.heartbeat();
        ctx.run_interval(HEARTBEAT, |act, _| act.heartbeat());
    }
}

impl Handler<Reload> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        if self.reloading {
            // One more pass after the current one sees every change.
            self.reload_again = true;
            return;
        }
        self.reloading = true;
        let db = self.db.clone();
        let fut = async move { repo::list_enabled(&db).await }
            .into_actor(self)
            .map(|res, act, ctx| {
                act.reloading = false;
                match res {
                    Ok(rows) if !act.stopping => act.apply(rows),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %crate::error::redact_db_error(&e), "reload failed; keeping the running subscriptions"),
                }
                if std::mem::take(&mut act.reload_again) {
                    ctx.notify(Reload);
                }
            });
        ctx.spawn(fut);
    }
}

impl Handler<Ready> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: Ready, _ctx: &mut Self::Context) {
        let Some(r) = self.running.get_mut(&msg.uuid) else {
            return;
        };
        let newly = !std::mem::replace(&mut r.ready, true);
        if newly && self.awaiting_ready > 0 {
            self.awaiting_ready -= 1;
            if self.awaiting_ready == 0 {
                crate::memory::release_free_heap();
            }
        }
    }
}

impl Handler<Tripped> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: Tripped, _ctx: &mut Self::Context) {
        if let Some(r) = self.running.remove(&msg.uuid) {
            r.addr.do_send(Drain(DrainReason::Tripped));
        }
    }
}

impl StreamHandler<Signal> for SupervisorActor {
    fn handle(&mut self, signal: Signal, ctx: &mut Self::Context) {
        match signal {
            Signal::Changed => ctx.notify(Reload),
            Signal::Stop => {
                tracing::info!("stop requested on the bus");
                if let Some(tx) = &self.stop_requested {
                    let _ = tx.send(());
                }
            }
        }
    }

    // The signal stream ending must not stop the supervisor.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<GetStatus> for SupervisorActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(Status {
            running: self
                .running
                .iter()
                .filter(|(_, r)| r.ready)
                .map(|(k, r)| (k.to_string(), r.spec.patterns.clone()))
                .collect(),
            starting: self.running.values().filter(|r| !r.ready).count(),
            reloads: self.reloads,
            restarting: self.restarting.keys().map(|k| k.to_string()).collect(),
            restarts: self.restarts,
        })
    }
}

impl Handler<Exited> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: Exited, ctx: &mut Self::Context) {
        // A drained, replaced or removed start is gone from `running` already.
        if self
            .running
            .get(&msg.uuid)
            .is_none_or(|r| r.generation != msg.generation)
        {
            return;
        }
        let Some(running) = self.running.remove(&msg.uuid) else {
            return;
        };
        if self.stopping {
            return;
        }
        let uuid = msg.uuid;
        let failures = match self.failures.remove(&uuid) {
            Some(n) if running.started_at.elapsed() < STABLE => n.saturating_add(1),
            _ => 1,
        };
        let doubling = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        let delay = FIRST_RESTART.saturating_mul(doubling).min(MAX_RESTART);
        self.restarts += 1;
        crate::metrics::global().subscription_restarted(&uuid);
        tracing::error!(
            subscription = %uuid,
            name = %running.spec.name,
            cause = %msg.cause,
            held = msg.held,
            failures,
            restart_in_secs = delay.as_secs(),
            "subscription stopped unexpectedly; what it held was dead-lettered; restarting"
        );
        self.circuit.do_send(Note {
            uuid: uuid.clone(),
            error: format!(
                "the worker's subscription stopped unexpectedly ({}); restarting in {} s",
                msg.cause,
                delay.as_secs()
            ),
        });
        self.generations += 1;
        let timer = self.generations;
        self.restarting.insert(
            uuid.clone(),
            Restart {
                spec: running.spec,
                failures,
                timer,
            },
        );
        ctx.run_later(delay, move |act, _ctx| act.restart_due(&uuid, timer));
    }
}

/// Make a running subscription's actor panic, as a bug would.
#[cfg(test)]
#[derive(Message, Clone, Debug)]
#[rtype(result = "bool")]
pub struct FailSubscription(pub Arc<str>);

#[cfg(test)]
impl Handler<FailSubscription> for SupervisorActor {
    type Result = bool;

    fn handle(&mut self, msg: FailSubscription, _ctx: &mut Self::Context) -> bool {
        match self.running.get(&msg.0) {
            Some(r) => {
                r.addr.do_send(super::subscription::Fail);
                true
            }
            None => false,
        }
    }
}

impl Handler<Shutdown> for SupervisorActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let drains: Vec<_> = self
            .running
            .drain()
            .map(|(_, r)| r.addr.send(Drain(DrainReason::Shutdown)))
            .collect();
        let circuit = self.circuit.clone();
        let journal = self.journal.clone();
        Box::pin(
            async move {
                futures::future::join_all(drains).await;
                let _ = circuit.send(Flush).await;
                if let Some(journal) = journal {
                    let _ = journal.send(CloseJournal).await;
                }
            }
            .into_actor(self),
        )
    }
}
