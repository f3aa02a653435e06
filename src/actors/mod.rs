//! The worker as actors: Supervisor → Subscription → Pattern, a shared Delivery pool,
//! and the Circuit breaker. `Worker::start` wires them to the bus and the database.

pub mod circuit;
pub mod decoded;
pub mod delivery;
pub mod journal;
pub mod messages;
pub mod pattern;
pub mod rate;
pub mod subscription;
pub mod supervisor;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use actix::{Actor, Addr};
use futures::{future::BoxFuture, stream::BoxStream, FutureExt, StreamExt};
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, watch};

use self::{
    circuit::CircuitActor,
    delivery::DeliveryPool,
    messages::Tripped,
    pattern::BusMessage,
    subscription::Budget,
    supervisor::{Shutdown, Signal, SupervisorActor, SupervisorParts},
};
use crate::{bus::Bus, config::Settings, delivery::DeliverySettings};

/// Counters the worker keeps (read by tests, logs and metrics).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub undecodable: AtomicU64,
    pub overflow: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl WorkerStats {
    pub fn record_undecodable(&self) -> u64 {
        self.undecodable.fetch_add(1, Relaxed) + 1
    }
    pub fn record_overflow(&self) -> u64 {
        self.overflow.fetch_add(1, Relaxed) + 1
    }
    pub fn record_delivery(&self, ok: bool) {
        if ok {
            self.delivered.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }
}

type SubscribeFn = dyn Fn(String, String) -> BoxFuture<'static, Result<BoxStream<'static, BusMessage>, String>>
    + Send
    + Sync;
type FlushFn = dyn Fn() -> BoxFuture<'static, ()> + Send + Sync;

/// Where PatternActors get their streams: the bus, nothing (bus disabled), or, in
/// tests, any function returning a stream.
#[derive(Clone)]
pub struct PatternSource {
    subscribe: Arc<SubscribeFn>,
    flush: Arc<FlushFn>,
}

impl PatternSource {
    pub fn from_fn(
        f: impl Fn(String, String) -> BoxFuture<'static, Result<BoxStream<'static, BusMessage>, String>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            subscribe: Arc::new(f),
            flush: Arc::new(|| async {}.boxed()),
        }
    }

    /// Any subscribe and flush functions.
    pub fn with_flush(
        subscribe: impl Fn(String, String) -> BoxFuture<'static, Result<BoxStream<'static, BusMessage>, String>>
            + Send
            + Sync
            + 'static,
        flush: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        Self {
            subscribe: Arc::new(subscribe),
            flush: Arc::new(flush),
        }
    }

    /// Queue-subscribe on the bus; with no bus, a stream that never yields.
    pub fn bus(bus: &Bus) -> Self {
        match bus.client().cloned() {
            Some(client) => {
                let flusher = client.clone();
                Self {
                    subscribe: Arc::new(move |pattern, group| {
                        let client = client.clone();
                        async move {
                            client
                                .queue_subscribe(pattern, group)
                                .await
                                .map(|s| s.map(BusMessage::from).boxed())
                                .map_err(|e| e.to_string())
                        }
                        .boxed()
                    }),
                    // A round trip proves the server has the subscriptions; bounded,
                    // since a bus that is down must not hold the worker.
                    flush: Arc::new(move || {
                        let client = flusher.clone();
                        async move {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
                        }
                        .boxed()
                    }),
                }
            }
            None => Self::from_fn(|_, _| async { Ok(futures::stream::pending().boxed()) }.boxed()),
        }
    }

    pub async fn subscribe(
        &self,
        pattern: &str,
        group: &str,
    ) -> Result<BoxStream<'static, BusMessage>, String> {
        (self.subscribe)(pattern.to_owned(), group.to_owned()).await
    }

    /// Resolves once the bus server has seen every subscription made so far.
    pub async fn flush(&self) {
        (self.flush)().await
    }
}

/// The running worker.
pub struct Worker {
    pub supervisor: Addr<SupervisorActor>,
    pub stats: Arc<WorkerStats>,
    stop_deliveries: watch::Sender<bool>,
    /// Yields when the bus asked this worker to stop.
    pub stop_requested: Option<mpsc::UnboundedReceiver<()>>,
    _pool: DeliveryPool,
}

impl Worker {
    /// Start the actors; the first reload runs at once.
    pub async fn start(settings: &Settings, db: DatabaseConnection, bus: Bus) -> Self {
        let source = match (settings.webhook.durable, bus.client()) {
            (true, Some(client)) => {
                let spec = crate::durable::StreamSpec::from_settings(settings);
                crate::durable::prepare(client, &spec).await;
                crate::durable::pattern_source(client.clone(), spec)
            }
            _ => PatternSource::bus(&bus),
        };
        let signals = bus_signals(&bus).await;
        Self::start_with(settings, db, bus, source, signals)
    }

    /// Start on any pattern source and signal stream.
    pub fn start_with(
        settings: &Settings,
        db: DatabaseConnection,
        bus: Bus,
        source: PatternSource,
        signals: Option<BoxStream<'static, Signal>>,
    ) -> Self {
        let w = &settings.webhook;
        let (stop_tx, stop_rx) = watch::channel(false);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = DeliveryPool::start(threads, DeliverySettings::from_settings(w), stop_rx);
        let stats = Arc::new(WorkerStats::default());
        let (stop_req_tx, stop_req_rx) = mpsc::unbounded_channel();
        let circuit = CircuitActor::new(db.clone(), bus.clone(), w.circuit_threshold);
        let budget = Budget {
            max_inflight: w.max_inflight_per_sub,
            queue: w.queue_per_sub,
            // One attempt in flight may run its full timeout.
            drain_timeout: w.timeout + Duration::from_secs(1),
        };
        let reload_every = w.reload_every;
        let journal = journal::JournalActor::new(
            db.clone(),
            journal::Retention {
                dead_letters: chrono::Duration::days(i64::from(w.dead_letter_days)),
                attempts: chrono::Duration::days(i64::from(w.log_days)),
            },
        )
        .start();
        let pool2 = pool.clone();
        let stats2 = stats.clone();
        let secrets = crate::secrets::SecretStore::from_settings(settings);
        let supervisor = SupervisorActor::create(move |ctx| {
            let me = actix::AsyncContext::address(ctx);
            let circuit = circuit
                .with_supervisor(me.clone().recipient::<Tripped>())
                .start();
            SupervisorActor::new(
                SupervisorParts {
                    db,
                    bus,
                    source,
                    pool: pool2,
                    circuit,
                    stats: stats2,
                    budget,
                    reload_every,
                    signals,
                    stop_requested: Some(stop_req_tx),
                    journal: Some(journal),
                    secrets,
                },
                me.recipient(),
            )
        });
        Self {
            supervisor,
            stats,
            stop_deliveries: stop_tx,
            stop_requested: Some(stop_req_rx),
            _pool: pool,
        }
    }

    /// Stop consuming, let in-flight deliveries finish (no new retries), flush state.
    pub async fn shutdown(self) {
        let _ = self.stop_deliveries.send(true);
        let _ = self.supervisor.send(Shutdown).await;
    }
}

/// `subscriptions_changed` and `control` as one stream of signals.
async fn bus_signals(bus: &Bus) -> Option<BoxStream<'static, Signal>> {
    let client = bus.client()?;
    let changed = match client
        .subscribe(crate::bus::SUBSCRIPTIONS_CHANGED.to_owned())
        .await
    {
        Ok(s) => s.map(|_| Signal::Changed).boxed(),
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to subscription changes");
            futures::stream::pending().boxed()
        }
    };
    let control = match client.subscribe(crate::bus::CONTROL.to_owned()).await {
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

#[cfg(test)]
mod tests;
