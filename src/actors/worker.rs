//! The running worker: starts the actors and wires them to the bus and the database.

use std::{sync::Arc, time::Duration};

use actix::{Actor, Addr};
use futures::stream::BoxStream;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, watch};

use super::{
    circuit::{CircuitActor, Tripped},
    delivery::DeliveryPool,
    journal::{JournalActor, Retention},
    schedule::{QueueLimits, QueueMemory},
    stats::WorkerStats,
    subscription::Budget,
    supervisor::{Shutdown, SupervisorActor, SupervisorParts},
};
use crate::{
    bus::{bus_signals, durable, Bus, PatternSource, Signal},
    config::Settings,
    delivery::DeliverySettings,
    secrets::SecretStore,
    shape::sandbox::Sandbox,
};

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
    /// Start the actors on the bus (durable or core, as configured); the first reload
    /// runs at once. `secrets` opens the stored secrets; `delivery` is shared with the
    /// API's test ping and replay, `templates` with its template check. A stream the
    /// JetStream server refuses (durable mode) stops the start.
    pub async fn start(
        settings: &Settings,
        db: DatabaseConnection,
        bus: Bus,
        parts: (SecretStore, DeliverySettings, Sandbox),
    ) -> Result<Self, durable::StreamRefused> {
        let source = match (settings.webhook.durable, bus.client()) {
            (true, Some(client)) => {
                let spec = durable::StreamSpec::from_settings(settings);
                durable::prepare(client, &spec).await?;
                if remember_mode(&db, "durable").await.as_deref() == Some("core") {
                    // What the stream kept while core mode ran was delivered (or
                    // lost) then: fresh consumers start at new messages.
                    let reset = durable::reset_consumers(client, &spec.name).await;
                    tracing::info!(
                        consumers_reset = reset,
                        "durable mode re-enabled after core mode: consumers start at new \
                         messages, so events core mode handled are not replayed"
                    );
                }
                durable::pattern_source(client.clone(), spec)
            }
            (false, Some(_)) => {
                remember_mode(&db, "core").await;
                PatternSource::core(&bus)
            }
            _ => PatternSource::core(&bus),
        };
        let signals = bus_signals(&bus).await;
        Ok(Self::start_with(settings, db, bus, parts, source, signals))
    }

    /// Start on any pattern source and signal stream.
    pub fn start_with(
        settings: &Settings,
        db: DatabaseConnection,
        bus: Bus,
        (secrets, delivery, templates): (SecretStore, DeliverySettings, Sandbox),
        source: PatternSource,
        signals: Option<BoxStream<'static, Signal>>,
    ) -> Self {
        let w = &settings.webhook;
        // A subscription that panics is logged and restarted, with the panic's message.
        crate::telemetry::install_panic_hook();
        let (stop_tx, stop_rx) = watch::channel(false);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = DeliveryPool::start(threads, delivery, stop_rx);
        let stats = Arc::new(WorkerStats::default());
        let (stop_req_tx, stop_req_rx) = mpsc::unbounded_channel();
        let circuit = CircuitActor::new(db.clone(), bus.clone(), w.circuit_threshold);
        let budget = Budget {
            max_inflight: w.max_inflight_per_sub,
            queue: QueueLimits {
                count: w.queue_per_sub,
                bytes: w.queue_bytes_per_sub,
                total: QueueMemory::new(w.queue_bytes_total),
            },
            // One attempt in flight may run its full timeout.
            drain_timeout: w.timeout + Duration::from_secs(1),
        };
        let reload_every = w.reload_every;
        let journal = JournalActor::new(
            db.clone(),
            Retention {
                dead_letters: chrono::Duration::days(i64::from(w.dead_letter_days)),
                attempts: chrono::Duration::days(i64::from(w.log_days)),
            },
        )
        .with_ledger(stats.clone())
        .start();
        let pool2 = pool.clone();
        let stats2 = stats.clone();
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
                    templates,
                },
                me,
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

/// Record this start's mode; the previous start's mode when it differed. A database
/// that cannot say is logged and counts as no change.
async fn remember_mode(db: &DatabaseConnection, mode: &str) -> Option<String> {
    let previous = match crate::db::bus_mode::previous(db).await {
        Ok(previous) => previous,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the previous delivery mode");
            return None;
        }
    };
    if previous.as_deref() == Some(mode) {
        return None;
    }
    if let Err(e) = crate::db::bus_mode::record(db, mode).await {
        tracing::warn!(error = %e, "cannot record the delivery mode");
    }
    previous
}
