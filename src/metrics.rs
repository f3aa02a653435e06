//! Prometheus metrics: one process-wide registry, rendered as text at
//! `GET /metrics` on the API listener, or on `DECNET_METRICS_BIND` when that is set.
//!
//! Cardinality stays bounded: the only per-subscription label is the subscription's
//! uuid (never a URL or an event id), and a subscription's series go once it has been
//! stopped for a grace period (long enough for a scrape to see its last values, a trip
//! included), so the series follow the live set.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::delivery::DeliveryOutcome;

/// How long the series of a stopped subscription stay.
pub const STOPPED_GRACE: Duration = Duration::from_secs(300);

/// How often starting subscriptions sweeps expired series (scrapes always do).
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The `result` label of an attempt: the status class, or `error` without a response.
const RESULTS: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "error"];

/// A delivery runs from milliseconds to the whole retry schedule (tens of seconds).
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The `outcome` labels of `decnet_webhook_events_total`.
const LEDGER_OUTCOMES: [&str; 6] = [
    "received",
    "filtered",
    "filter_error",
    "delivered",
    "dead_lettered",
    "released",
];

/// Every metric of the process, in one registry.
pub struct Metrics {
    registry: Registry,
    deliveries: IntCounterVec,
    attempts: IntCounterVec,
    duration: Histogram,
    queue_depth: IntGaugeVec,
    queue_bytes: IntGaugeVec,
    inflight: IntGaugeVec,
    trips: IntCounterVec,
    restarts: IntCounterVec,
    reloads: IntCounter,
    bus_connected: IntGauge,
    bus_fell_behind: IntCounter,
    dead_letters: IntCounterVec,
    events: IntCounterVec,
    events_dead_lettered: IntCounterVec,
    local_failures: IntCounter,
    token_failures: IntCounterVec,
    running: IntGauge,
    live: Mutex<HashMap<Arc<str>, Live>>,
    grace: Duration,
    /// Bumped whenever series are dropped, so handles kept elsewhere
    /// ([`EventCounters`]) know to look theirs up again.
    pruned: std::sync::atomic::AtomicU64,
    /// When starting a subscription may next sweep the map: a sweep walks every
    /// entry, and ten thousand starts must not walk it ten thousand times.
    next_prune: Mutex<Instant>,
}

/// A subscription with series: how many actors hold it (a restart briefly has two,
/// as may several workers in one process), and since when none does.
#[derive(Default)]
struct Live {
    holders: usize,
    stopped_at: Option<Instant>,
}

static GLOBAL: LazyLock<Arc<Metrics>> = LazyLock::new(|| {
    // The definitions are constants; the unit tests build them.
    Arc::new(Metrics::new(STOPPED_GRACE).expect("metric definitions are valid"))
});

/// The process-wide metrics.
pub fn global() -> &'static Arc<Metrics> {
    &GLOBAL
}

impl Metrics {
    /// A fresh registry with every metric; `grace` is how long a stopped
    /// subscription's series stay.
    pub fn new(grace: Duration) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let deliveries = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_deliveries_total",
                "Deliveries finished, by subscription and outcome (success or failure after every attempt).",
            ),
            &["subscription", "outcome"],
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_attempts_total",
                "HTTP attempts, by subscription and result (status class, or error without a response).",
            ),
            &["subscription", "result"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "decnet_webhook_delivery_duration_seconds",
                "Time from first attempt to outcome of a delivery, waits between retries included.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "decnet_webhook_queue_depth",
                "Events waiting in a subscription's queue.",
            ),
            &["subscription"],
        )?;
        let queue_bytes = IntGaugeVec::new(
            Opts::new(
                "decnet_webhook_queue_bytes",
                "What the events waiting in a subscription's queue weigh, in bytes (counted against DECNET_WEBHOOK_QUEUE_BYTES_PER_SUB).",
            ),
            &["subscription"],
        )?;
        let inflight = IntGaugeVec::new(
            Opts::new(
                "decnet_webhook_inflight",
                "Deliveries a subscription has in flight.",
            ),
            &["subscription"],
        )?;
        let trips = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_circuit_trips_total",
                "Circuit-breaker trips, by subscription.",
            ),
            &["subscription"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_subscription_restarts_total",
                "Times a subscription stopped unexpectedly in the worker and was restarted.",
            ),
            &["subscription"],
        )?;
        let reloads = IntCounter::new(
            "decnet_webhook_reloads_total",
            "Subscription reloads completed by the worker.",
        )?;
        let bus_connected = IntGauge::new(
            "decnet_webhook_bus_connected",
            "1 while the NATS connection is up, else 0.",
        )?;
        let bus_fell_behind = IntCounter::new(
            "decnet_webhook_bus_fell_behind_total",
            "Times the NATS client dropped messages of a subscription whose buffer was full \
             (core mode; each time may cover several messages).",
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_dead_letters_total",
                "Dead letters written to the store, by reason.",
            ),
            &["reason"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_events_total",
                "The ledger: events a subscription received, and what became of them \
                 (filtered, filter_error, delivered, dead_lettered, released).",
            ),
            &["subscription", "outcome"],
        )?;
        let events_dead_lettered = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_events_dead_lettered_total",
                "The ledger: events a subscription dead-lettered, by reason.",
            ),
            &["subscription", "reason"],
        )?;
        let local_failures = IntCounter::new(
            "decnet_webhook_local_failures_total",
            "Delivery attempts that failed for lack of a local resource (descriptors, buffers, \
             memory, ephemeral ports): retried, never counted against the receiver.",
        )?;
        let token_failures = IntCounterVec::new(
            Opts::new(
                "decnet_webhook_token_failures_total",
                "Delivery attempts that got no access token from the destination's OAuth2 \
                 token endpoint (the receiver was not asked); counted in the attempts too.",
            ),
            &["subscription"],
        )?;
        let running = IntGauge::new(
            "decnet_webhook_subscriptions_running",
            "Subscriptions the worker runs.",
        )?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_bytes.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(trips.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(bus_connected.clone()))?;
        registry.register(Box::new(bus_fell_behind.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(events_dead_lettered.clone()))?;
        registry.register(Box::new(local_failures.clone()))?;
        registry.register(Box::new(token_failures.clone()))?;
        registry.register(Box::new(running.clone()))?;
        Ok(Self {
            registry,
            deliveries,
            attempts,
            duration,
            queue_depth,
            queue_bytes,
            inflight,
            trips,
            restarts,
            reloads,
            bus_connected,
            bus_fell_behind,
            dead_letters,
            events,
            events_dead_lettered,
            local_failures,
            token_failures,
            running,
            live: Mutex::default(),
            grace,
            pruned: std::sync::atomic::AtomicU64::new(0),
            next_prune: Mutex::new(Instant::now()),
        })
    }

    /// The handles of one subscription, resolved once, for its actor to keep; its
    /// series stay while any handle of that uuid lives.
    pub fn subscription(self: &Arc<Self>, uuid: &Arc<str>) -> SubscriptionMetrics {
        let mut live = self.live();
        let now = Instant::now();
        let mut next = self
            .next_prune
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now >= *next {
            *next = now + PRUNE_EVERY;
            self.prune(&mut live);
        }
        drop(next);
        let entry = live.entry(uuid.clone()).or_default();
        entry.holders += 1;
        entry.stopped_at = None;
        if entry.holders == 1 {
            self.running.inc();
        }
        SubscriptionMetrics {
            metrics: self.clone(),
            uuid: uuid.clone(),
            handles: None,
            reported: (0, 0, 0),
        }
    }

    /// A subscription's circuit tripped.
    pub fn circuit_tripped(&self, uuid: &Arc<str>) {
        let mut live = self.live();
        // A trip of a subscription with no running actor here still gets its series
        // removed in time.
        let entry = live.entry(uuid.clone()).or_default();
        if entry.holders == 0 {
            entry.stopped_at = Some(Instant::now());
        }
        self.trips.with_label_values(&[uuid]).inc();
    }

    /// A subscription stopped unexpectedly and is to be restarted.
    pub fn subscription_restarted(&self, uuid: &Arc<str>) {
        let mut live = self.live();
        // Its actor is gone: the series goes with the others if it never comes back.
        let entry = live.entry(uuid.clone()).or_default();
        if entry.holders == 0 {
            entry.stopped_at = Some(Instant::now());
        }
        self.restarts.with_label_values(&[uuid]).inc();
    }

    /// The worker finished a reload.
    pub fn reloaded(&self) {
        self.reloads.inc();
    }

    pub fn set_bus_connected(&self, connected: bool) {
        self.bus_connected.set(i64::from(connected));
    }

    /// The bus client dropped messages of a subscription that fell behind.
    pub fn bus_fell_behind(&self) {
        self.bus_fell_behind.inc();
    }

    /// `count` dead letters with this reason (`Reason::as_str`, a fixed set) were
    /// written to the store.
    pub fn dead_letters_written(&self, reason: &str, count: u64) {
        self.dead_letters.with_label_values(&[reason]).inc_by(count);
    }

    /// The ledger moved `n` events of `uuid`: received (when `arrived`), and into a
    /// final outcome (label, dead-letter reason) when there is one. `cache` keeps the
    /// subscription's series between calls, so a step takes no labelled lookup.
    pub fn events_moved(
        &self,
        cache: &mut Option<EventCounters>,
        uuid: &str,
        arrived: bool,
        outcome: Option<(&str, Option<&str>)>,
        n: u64,
    ) {
        let epoch = self.pruned.load(std::sync::atomic::Ordering::Relaxed);
        let counters = match cache {
            Some(c) if c.epoch == epoch => c,
            _ => cache.insert(EventCounters {
                epoch,
                by_outcome: LEDGER_OUTCOMES.map(|o| self.events.with_label_values(&[uuid, o])),
            }),
        };
        if arrived {
            counters.by_outcome[0].inc_by(n);
        }
        if let Some((outcome, reason)) = outcome {
            match LEDGER_OUTCOMES.iter().position(|o| *o == outcome) {
                Some(i) => counters.by_outcome[i].inc_by(n),
                None => self.events.with_label_values(&[uuid, outcome]).inc_by(n),
            }
            if let Some(reason) = reason {
                self.events_dead_lettered
                    .with_label_values(&[uuid, reason])
                    .inc_by(n);
            }
        }
    }

    /// Everything, in the Prometheus text format (`TEXT_FORMAT`).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        self.prune(&mut self.live());
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    fn live(&self) -> MutexGuard<'_, HashMap<Arc<str>, Live>> {
        // The map stays consistent whatever panicked while holding it.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drop the series of subscriptions stopped for longer than the grace period.
    fn prune(&self, live: &mut HashMap<Arc<str>, Live>) {
        live.retain(|uuid, entry| {
            let expired =
                entry.holders == 0 && entry.stopped_at.is_some_and(|t| t.elapsed() >= self.grace);
            if expired {
                let id: &str = uuid;
                // A series never created is not an error worth reporting.
                for outcome in ["success", "failure"] {
                    let _ = self.deliveries.remove_label_values(&[id, outcome]);
                }
                for result in RESULTS {
                    let _ = self.attempts.remove_label_values(&[id, result]);
                }
                let _ = self.queue_depth.remove_label_values(&[id]);
                let _ = self.queue_bytes.remove_label_values(&[id]);
                let _ = self.inflight.remove_label_values(&[id]);
                let _ = self.trips.remove_label_values(&[id]);
                let _ = self.restarts.remove_label_values(&[id]);
                let _ = self.token_failures.remove_label_values(&[id]);
                for outcome in LEDGER_OUTCOMES {
                    let _ = self.events.remove_label_values(&[id, outcome]);
                }
                for reason in crate::db::dead_letters::Reason::ALL {
                    let _ = self
                        .events_dead_lettered
                        .remove_label_values(&[id, reason.as_str()]);
                }
            }
            if expired {
                self.pruned
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            !expired
        });
    }

    fn release(&self, uuid: &Arc<str>) {
        let mut live = self.live();
        if let Some(entry) = live.get_mut(uuid) {
            entry.holders = entry.holders.saturating_sub(1);
            if entry.holders == 0 {
                entry.stopped_at = Some(Instant::now());
                self.running.dec();
            }
        }
    }
}

/// A subscription's `decnet_webhook_events_total` series by outcome (in
/// `LEDGER_OUTCOMES` order), as of a prune epoch.
#[derive(Debug)]
pub struct EventCounters {
    epoch: u64,
    by_outcome: [IntCounter; LEDGER_OUTCOMES.len()],
}

/// One subscription's metric handles, held by its actor: updating them takes no
/// lookup and no allocation. Its series are made at its first delivery, so thousands
/// of idle subscriptions cost no memory here.
pub struct SubscriptionMetrics {
    metrics: Arc<Metrics>,
    uuid: Arc<str>,
    handles: Option<Box<Handles>>,
    /// What this holder added to the shared gauges (queued, its bytes, in flight).
    reported: (i64, i64, i64),
}

struct Handles {
    success: IntCounter,
    failure: IntCounter,
    attempts: [IntCounter; RESULTS.len()],
    queue_depth: IntGauge,
    queue_bytes: IntGauge,
    inflight: IntGauge,
}

impl SubscriptionMetrics {
    fn handles(&mut self) -> &Handles {
        let (metrics, id) = (&self.metrics, &*self.uuid);
        self.handles.get_or_insert_with(|| {
            Box::new(Handles {
                success: metrics.deliveries.with_label_values(&[id, "success"]),
                failure: metrics.deliveries.with_label_values(&[id, "failure"]),
                attempts: RESULTS.map(|r| metrics.attempts.with_label_values(&[id, r])),
                queue_depth: metrics.queue_depth.with_label_values(&[id]),
                queue_bytes: metrics.queue_bytes.with_label_values(&[id]),
                inflight: metrics.inflight.with_label_values(&[id]),
            })
        })
    }

    /// A delivery finished: its outcome, each attempt, and how long it took.
    pub fn delivered(&mut self, outcome: &DeliveryOutcome) {
        let local = outcome.attempt_log.iter().filter(|a| a.local).count();
        if local > 0 {
            self.metrics.local_failures.inc_by(local as u64);
        }
        // Rare: the series appears with a subscription's first token failure.
        let token = outcome.attempt_log.iter().filter(|a| a.token).count();
        if token > 0 {
            self.metrics
                .token_failures
                .with_label_values(&[&self.uuid])
                .inc_by(token as u64);
        }
        let h = self.handles();
        if outcome.ok() {
            h.success.inc();
        } else {
            h.failure.inc();
        }
        for t in &outcome.attempt_log {
            let class = match t.status {
                Some(200..=299) => 0,
                Some(300..=399) => 1,
                Some(400..=499) => 2,
                Some(500..=599) => 3,
                _ => 4,
            };
            h.attempts[class].inc();
        }
        if !outcome.attempt_log.is_empty() {
            self.metrics.duration.observe(outcome.latency.as_secs_f64());
        }
    }

    /// The subscription's queue length, what it weighs, and deliveries in flight now.
    /// Gauges add up over every holder of the uuid (a restarting subscription's old and
    /// new actor).
    pub fn set_load(&mut self, queued: usize, queued_bytes: usize, inflight: usize) {
        let now = (gauge(queued), gauge(queued_bytes), gauge(inflight));
        if now == self.reported {
            return;
        }
        let reported = self.reported;
        let h = self.handles();
        if now.0 != reported.0 {
            h.queue_depth.add(now.0 - reported.0);
        }
        if now.1 != reported.1 {
            h.queue_bytes.add(now.1 - reported.1);
        }
        if now.2 != reported.2 {
            h.inflight.add(now.2 - reported.2);
        }
        self.reported = now;
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Drop for SubscriptionMetrics {
    fn drop(&mut self) {
        self.set_load(0, 0, 0);
        self.metrics.release(&self.uuid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Attempt, FailureKind};

    fn outcome(ok: bool, statuses: &[Option<u16>]) -> DeliveryOutcome {
        let mut o = DeliveryOutcome::not_attempted(FailureKind::RetriesExhausted, String::new());
        o.failure = (!ok).then_some(FailureKind::RetriesExhausted);
        o.latency = Duration::from_millis(30);
        o.attempt_log = statuses
            .iter()
            .map(|s| Attempt {
                at: chrono::Utc::now(),
                status: *s,
                latency: Duration::from_millis(10),
                error: None,
                local: false,
                token: false,
            })
            .collect();
        o
    }

    /// The value of the sample with exactly these labels, parsed as a scraper would.
    fn value(m: &Metrics, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = m.render().unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        scrape
            .samples
            .into_iter()
            .find(|s| {
                s.metric == metric
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{metric} is {other:?}"),
            })
    }

    #[test]
    fn a_subscription_counts_outcomes_attempts_and_load() {
        let m = Arc::new(Metrics::new(STOPPED_GRACE).unwrap());
        let uuid: Arc<str> = "0b7c6c2e-2d7e-4a39-9a55-1f0b5c1f6a10".into();
        let mut s = m.subscription(&uuid);
        s.delivered(&outcome(true, &[Some(503), None, Some(204)]));
        s.delivered(&outcome(false, &[Some(404)]));
        s.set_load(7, 7_000, 3);
        let sub = ("subscription", &*uuid);
        let deliveries = "decnet_webhook_deliveries_total";
        assert_eq!(
            value(&m, deliveries, &[sub, ("outcome", "success")]),
            Some(1.0)
        );
        assert_eq!(
            value(&m, deliveries, &[sub, ("outcome", "failure")]),
            Some(1.0)
        );
        for (class, n) in [
            ("2xx", 1.0),
            ("3xx", 0.0),
            ("4xx", 1.0),
            ("5xx", 1.0),
            ("error", 1.0),
        ] {
            let got = value(
                &m,
                "decnet_webhook_attempts_total",
                &[sub, ("result", class)],
            );
            assert_eq!(got, Some(n), "{class}");
        }
        let count = value(&m, "decnet_webhook_delivery_duration_seconds_count", &[]);
        assert_eq!(count, Some(2.0));
        assert_eq!(value(&m, "decnet_webhook_queue_depth", &[sub]), Some(7.0));
        assert_eq!(
            value(&m, "decnet_webhook_queue_bytes", &[sub]),
            Some(7_000.0)
        );
        assert_eq!(value(&m, "decnet_webhook_inflight", &[sub]), Some(3.0));
        assert_eq!(
            value(&m, "decnet_webhook_subscriptions_running", &[]),
            Some(1.0)
        );
    }

    #[test]
    fn local_failures_are_counted_apart() {
        let m = Arc::new(Metrics::new(STOPPED_GRACE).unwrap());
        let uuid: Arc<str> = "7e2b1c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e".into();
        let mut s = m.subscription(&uuid);
        let mut o = outcome(true, &[None, None, Some(200)]);
        o.attempt_log[0].local = true;
        o.attempt_log[1].local = true;
        s.delivered(&o);
        s.delivered(&outcome(false, &[Some(503)]));
        let local = value(&m, "decnet_webhook_local_failures_total", &[]);
        assert_eq!(local, Some(2.0));
    }

    #[test]
    fn token_failures_are_counted_per_subscription() {
        let m = Arc::new(Metrics::new(STOPPED_GRACE).unwrap());
        let uuid: Arc<str> = "0b7c4a52-1f3e-4d8a-9c6b-2e5f7a9d1c3b".into();
        let mut s = m.subscription(&uuid);
        s.delivered(&outcome(true, &[Some(200)]));
        let none = value(
            &m,
            "decnet_webhook_token_failures_total",
            &[("subscription", &*uuid)],
        );
        assert_eq!(none, None, "no series before a failure");
        let mut o = outcome(false, &[None, None]);
        o.attempt_log[0].token = true;
        o.attempt_log[1].token = true;
        s.delivered(&o);
        let counted = value(
            &m,
            "decnet_webhook_token_failures_total",
            &[("subscription", &*uuid)],
        );
        assert_eq!(counted, Some(2.0));
    }

    #[test]
    fn series_follow_the_live_set() {
        let m = Arc::new(Metrics::new(Duration::ZERO).unwrap());
        let uuid: Arc<str> = "5d1e7d7a-8f71-4d0e-b1c4-6d0f0b8a2b33".into();
        let sub = ("subscription", &*uuid);
        // A restart: the new actor takes the uuid before the old one has finished.
        let mut old = m.subscription(&uuid);
        let mut new = m.subscription(&uuid);
        old.set_load(2, 2_000, 1);
        new.set_load(1, 1_000, 1);
        old.delivered(&outcome(true, &[Some(200)]));
        assert_eq!(value(&m, "decnet_webhook_inflight", &[sub]), Some(2.0));
        assert_eq!(
            value(&m, "decnet_webhook_queue_bytes", &[sub]),
            Some(3_000.0)
        );
        assert_eq!(
            value(&m, "decnet_webhook_subscriptions_running", &[]),
            Some(1.0)
        );
        drop(old);
        // Kept while the new actor runs, without the old one's load.
        assert_eq!(value(&m, "decnet_webhook_inflight", &[sub]), Some(1.0));
        assert_eq!(
            value(&m, "decnet_webhook_queue_bytes", &[sub]),
            Some(1_000.0)
        );
        assert_eq!(value(&m, "decnet_webhook_queue_depth", &[sub]), Some(1.0));
        m.circuit_tripped(&uuid);
        assert_eq!(
            value(&m, "decnet_webhook_circuit_trips_total", &[sub]),
            Some(1.0)
        );
        drop(new);
        let text = m.render().unwrap();
        assert!(!text.contains(&*uuid), "{text}");
        assert_eq!(
            value(&m, "decnet_webhook_subscriptions_running", &[]),
            Some(0.0)
        );
        // A restart's count goes with the subscription too.
        let restarted: Arc<str> = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f".into();
        m.subscription_restarted(&restarted);
        assert!(!m.render().unwrap().contains(&*restarted));
        // A trip with no actor here goes like the rest.
        let other: Arc<str> = "9a3f1c56-1b0e-4c6a-8f0e-2a7d4e5b6c7d".into();
        m.circuit_tripped(&other);
        assert!(!m.render().unwrap().contains(&*other));
    }

    #[test]
    fn stopped_subscriptions_stay_for_the_grace_period() {
        let m = Arc::new(Metrics::new(STOPPED_GRACE).unwrap());
        let uuid: Arc<str> = "2c9d4f0e-7a61-4b8e-9c3d-5e6f7a8b9c0d".into();
        let sub = ("subscription", &*uuid);
        let mut s = m.subscription(&uuid);
        s.set_load(4, 4_000, 2);
        s.delivered(&outcome(false, &[Some(500)]));
        m.circuit_tripped(&uuid);
        drop(s);
        let trips = value(&m, "decnet_webhook_circuit_trips_total", &[sub]);
        assert_eq!(trips, Some(1.0));
        let failures = value(
            &m,
            "decnet_webhook_deliveries_total",
            &[sub, ("outcome", "failure")],
        );
        assert_eq!(failures, Some(1.0));
        assert_eq!(value(&m, "decnet_webhook_inflight", &[sub]), Some(0.0));
        assert_eq!(
            value(&m, "decnet_webhook_subscriptions_running", &[]),
            Some(0.0)
        );
        m.subscription_restarted(&uuid);
        let restarts = value(&m, "decnet_webhook_subscription_restarts_total", &[sub]);
        assert_eq!(restarts, Some(1.0));
    }

    #[test]
    fn process_wide_gauges_and_dead_letters() {
        let m = Metrics::new(STOPPED_GRACE).unwrap();
        m.reloaded();
        m.set_bus_connected(true);
        m.dead_letters_written("queue_overflow", 3);
        assert_eq!(value(&m, "decnet_webhook_reloads_total", &[]), Some(1.0));
        assert_eq!(value(&m, "decnet_webhook_bus_connected", &[]), Some(1.0));
        let overflow = value(
            &m,
            "decnet_webhook_dead_letters_total",
            &[("reason", "queue_overflow")],
        );
        assert_eq!(overflow, Some(3.0));
        m.set_bus_connected(false);
        assert_eq!(value(&m, "decnet_webhook_bus_connected", &[]), Some(0.0));
        assert_eq!(
            value(&m, "decnet_webhook_bus_fell_behind_total", &[]),
            Some(0.0)
        );
        m.bus_fell_behind();
        assert_eq!(
            value(&m, "decnet_webhook_bus_fell_behind_total", &[]),
            Some(1.0)
        );
    }
}
