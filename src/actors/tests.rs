//! Actor tests: in-memory streams in, probes in place of the pool and the circuit.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, Context, Handler, ResponseFuture};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::sync::{watch, Notify};

use super::{
    circuit::{Flush, Report, Tripped},
    delivery::{Deliver, DeliveryPool},
    pattern::{Incoming, PatternActor},
    spec::SubscriptionSpec,
    stats::WorkerStats,
    subscription::{Budget, SubscriptionActor},
};
use crate::{
    bus::{BusMessage, PatternSource},
    config::Secret,
    delivery::DeliveryOutcome,
    shape::sandbox::{Sandbox, TemplateLimits},
};

/// A sandbox for actors whose subscriptions have no template.
fn unused_sandbox() -> Sandbox {
    Sandbox::new(TemplateLimits {
        timeout: Duration::from_secs(1),
        memory_mib: 64,
    })
}

/// Records every message it gets.
struct Probe<M> {
    seen: Arc<Mutex<Vec<M>>>,
    arrived: Arc<Notify>,
}

impl<M: Unpin + 'static> Actor for Probe<M> {
    type Context = Context<Self>;
}

impl Handler<Incoming> for Probe<Incoming> {
    type Result = ();
    fn handle(&mut self, msg: Incoming, _: &mut Context<Self>) {
        self.seen.lock().unwrap().push(msg);
        self.arrived.notify_waiters();
    }
}

impl Handler<Report> for Probe<Report> {
    type Result = bool;
    fn handle(&mut self, msg: Report, _: &mut Context<Self>) -> bool {
        self.seen.lock().unwrap().push(msg);
        self.arrived.notify_waiters();
        false
    }
}

/// Stands in for the delivery pool: holds every delivery until released.
struct HoldingPool {
    held: Arc<Mutex<Vec<String>>>,
    release: watch::Receiver<bool>,
    arrived: Arc<Notify>,
}

impl Actor for HoldingPool {
    type Context = Context<Self>;
}

impl Handler<Deliver> for HoldingPool {
    type Result = ResponseFuture<DeliveryOutcome>;
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) -> Self::Result {
        self.held.lock().unwrap().push(msg.event.id.clone());
        self.arrived.notify_waiters();
        let mut release = self.release.clone();
        Box::pin(async move {
            let _ = release.wait_for(|released| *released).await;
            DeliveryOutcome {
                failure: None,
                status: Some(200),
                error: None,
                attempts: 1,
                latency: Duration::ZERO,
                gone: false,
                attempt_log: Vec::new(),
                item_failures: Vec::new(),
            }
        })
    }
}

async fn until(arrived: &Notify, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let notified = arrived.notified();
        if cond() {
            return;
        }
        assert!(
            tokio::time::timeout_at(deadline, notified).await.is_ok() || cond(),
            "condition not met in time"
        );
    }
}

fn msg(subject: &str, body: &str) -> BusMessage {
    BusMessage {
        subject: subject.into(),
        payload: Bytes::from(body.to_owned()),
        msg_id: None,
        trace: None,
        seq: None,
        ack: None,
    }
}

#[actix::test]
async fn pattern_actor_decodes_a_stream_and_skips_what_is_not_json() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let arrived = Arc::new(Notify::new());
    let probe = Probe::<Incoming> {
        seen: seen.clone(),
        arrived: arrived.clone(),
    }
    .start();
    let stats = Arc::new(WorkerStats::default());
    let stream = futures::stream::iter(vec![
        msg("a.b", r#"{"id":"1","payload":{"x":1}}"#),
        msg("a.b", "not json"),
        msg("a.c", r#"[1,2]"#),
    ])
    .boxed();
    PatternActor::new("a.*".into(), stream, probe.recipient(), stats.clone()).start();
    until(&arrived, || seen.lock().unwrap().len() == 2).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].event.id, "1");
    assert_eq!(seen[0].event.payload, serde_json::json!({"x": 1}));
    assert_eq!(seen[1].event.topic, "a.c");
    assert_eq!(seen[1].event.payload, serde_json::json!([1, 2]));
    assert_eq!(
        stats.undecodable.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[actix::test]
async fn subscription_holds_at_most_its_budget_and_reports_outcomes() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let (release, released) = watch::channel(false);
    let pool_arrived = Arc::new(Notify::new());
    let pool = HoldingPool {
        held: held.clone(),
        release: released,
        arrived: pool_arrived.clone(),
    }
    .start();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let outcome_arrived = Arc::new(Notify::new());
    let circuit = Probe::<Report> {
        seen: outcomes.clone(),
        arrived: outcome_arrived.clone(),
    }
    .start();
    let events: Vec<BusMessage> = (0..10)
        .map(|i| msg("attacker.x", &format!(r#"{{"id":"e{i}","payload":{{}}}}"#)))
        .collect();
    let source = PatternSource::from_fn(move |_, _| {
        let events = events.clone();
        async move { Ok(futures::stream::iter(events).boxed()) }.boxed()
    });
    let spec = SubscriptionSpec {
        uuid: "u-1".into(),
        name: "probe".into(),
        url: "https://1.1.1.1/hook".into(),
        secret: Secret::new("s".repeat(32)),
        previous_secret: None,
        previous_secret_expires_at: None,
        patterns: vec!["attacker.>".into()],
        options: Default::default(),
        destination_secret: None,
        access: Default::default(),
        filter: None,
    };
    let stats = Arc::new(WorkerStats::default());
    SubscriptionActor::new(
        Arc::new(spec.clone()),
        spec.target().unwrap(),
        Budget {
            max_inflight: 2,
            queue: super::schedule::QueueLimits::count(3),
            drain_timeout: Duration::from_secs(1),
        },
        source,
        DeliveryPool::from_recipients(vec![pool.recipient()]),
        circuit.recipient(),
        stats.clone(),
    )
    .start();

    // Two in flight, three queued, five over the bound.
    until(&pool_arrived, || held.lock().unwrap().len() == 2).await;
    assert_eq!(*held.lock().unwrap(), ["e0", "e1"]);
    let overflow = || stats.overflow.load(std::sync::atomic::Ordering::Relaxed);
    until(&pool_arrived, || overflow() == 5).await;

    // Releasing lets the queue drain, in order, and every outcome reaches the circuit.
    release.send(true).unwrap();
    until(&outcome_arrived, || outcomes.lock().unwrap().len() == 5).await;
    assert_eq!(*held.lock().unwrap(), ["e0", "e1", "e2", "e3", "e4"]);
    let outcomes = outcomes.lock().unwrap();
    assert!(outcomes.iter().all(|o| o.outcome.ok() && &*o.uuid == "u-1"));
    // The ledger accounts for all ten.
    let counts = stats.ledger.counts("u-1").expect("an account");
    assert!(counts.balances(), "{counts:?}");
    assert_eq!((counts.received, counts.delivered), (10, 5));
    assert_eq!(counts.dead_lettered_by_reason["queue_overflow"], 5);
    assert_eq!((counts.queued, counts.in_flight), (0, 0));
}

impl Handler<Tripped> for Probe<Tripped> {
    type Result = ();
    fn handle(&mut self, msg: Tripped, _: &mut Context<Self>) {
        self.seen.lock().unwrap().push(msg);
        self.arrived.notify_waiters();
    }
}

fn failure(error: &str) -> DeliveryOutcome {
    DeliveryOutcome {
        failure: Some(crate::delivery::FailureKind::RetriesExhausted),
        status: Some(503),
        error: Some(error.into()),
        attempts: 3,
        latency: Duration::ZERO,
        gone: false,
        attempt_log: Vec::new(),
        item_failures: Vec::new(),
    }
}

/// An in-memory database holding one enabled subscription; its uuid.
async fn database_with_subscription(
    name: &str,
    url: &str,
    pattern: &str,
) -> (sea_orm::DatabaseConnection, String) {
    let db = crate::db::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap();
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut row =
        crate::db::subscriptions::new_row(name, url, &"s".repeat(32), &[pattern.to_owned()], true);
    row.uuid = sea_orm::Set(uuid.clone());
    crate::db::subscriptions::insert(&db, row).await.unwrap();
    (db, uuid)
}

#[actix::test]
async fn circuit_trips_on_its_own_count_while_the_database_is_down() {
    let db = crate::db::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap();
    // Every write now fails, as with a database that went away.
    db.clone().close().await.unwrap();
    let trips = Arc::new(Mutex::new(Vec::new()));
    let arrived = Arc::new(Notify::new());
    let supervisor = Probe::<Tripped> {
        seen: trips.clone(),
        arrived: arrived.clone(),
    }
    .start();
    let circuit = super::circuit::CircuitActor::new(db, crate::bus::Bus::disabled(), 3)
        .with_supervisor(supervisor.recipient())
        .start();
    for i in 0..3 {
        circuit.do_send(Report {
            uuid: "u-down".into(),
            name: "down".into(),
            outcome: failure(&format!("HTTP 503 #{i}")),
        });
    }
    until(&arrived, || trips.lock().unwrap().len() == 1).await;
    assert_eq!(&*trips.lock().unwrap()[0].uuid, "u-down");
    // The actor is alive and still answers while its writes keep retrying.
    circuit
        .send(Report {
            uuid: "u-down".into(),
            name: "down".into(),
            outcome: failure("again"),
        })
        .await
        .unwrap();
}

#[actix::test]
async fn circuit_coalesces_successes_and_writes_failures_in_order() {
    let (db, uuid) = database_with_subscription("c", "https://1.1.1.1/", "a.>").await;
    let circuit =
        super::circuit::CircuitActor::new(db.clone(), crate::bus::Bus::disabled(), 5).start();
    let key: Arc<str> = uuid.as_str().into();
    let ok = DeliveryOutcome {
        failure: None,
        status: Some(200),
        error: None,
        attempts: 1,
        latency: Duration::ZERO,
        gone: false,
        attempt_log: Vec::new(),
        item_failures: Vec::new(),
    };
    // success, failure, failure, success, failure: the row must end at 1 failure.
    for outcome in [ok.clone(), failure("f1"), failure("f2"), ok, failure("f3")] {
        circuit.do_send(Report {
            uuid: key.clone(),
            name: "c".into(),
            outcome,
        });
    }
    circuit.send(Flush).await.unwrap();
    let row = crate::db::subscriptions::get(&db, &uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.consecutive_failures, 1);
    assert_eq!(row.last_error.as_deref(), Some("f3"));
    assert!(row.last_success_at.is_some());
    assert!(row.enabled);
}

#[actix::test]
async fn circuit_neither_counts_nor_resets_on_local_failures() {
    let (db, uuid) = database_with_subscription("l", "https://1.1.1.1/", "a.>").await;
    let circuit =
        super::circuit::CircuitActor::new(db.clone(), crate::bus::Bus::disabled(), 2).start();
    let key: Arc<str> = uuid.as_str().into();
    let local = DeliveryOutcome {
        failure: Some(crate::delivery::FailureKind::Local),
        status: None,
        error: Some("connect: Too many open files (os error 24)".into()),
        attempts: 4,
        latency: Duration::ZERO,
        gone: false,
        attempt_log: Vec::new(),
        item_failures: Vec::new(),
    };
    let report = |outcome: DeliveryOutcome| Report {
        uuid: key.clone(),
        name: "l".into(),
        outcome,
    };
    assert!(!circuit.send(report(failure("f1"))).await.unwrap());
    // Past the threshold of 2 had they counted.
    for _ in 0..5 {
        assert!(!circuit.send(report(local.clone())).await.unwrap());
    }
    circuit.send(Flush).await.unwrap();
    let row = crate::db::subscriptions::get(&db, &uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.consecutive_failures, 1);
    assert_eq!(row.last_error.as_deref(), Some("f1"));
    assert!(row.last_success_at.is_none(), "not a success either");
    // The count they left alone still trips on the next failure of the receiver.
    assert!(circuit.send(report(failure("f2"))).await.unwrap());
}

/// A pattern source whose every subscribe opens a new in-memory stream; the test
/// publishes into the latest one.
#[derive(Clone, Default)]
struct Streams(Arc<Mutex<Vec<futures::channel::mpsc::UnboundedSender<BusMessage>>>>);

impl Streams {
    fn source(&self) -> PatternSource {
        let streams = self.clone();
        PatternSource::from_fn(move |_, _| {
            let (tx, rx) = futures::channel::mpsc::unbounded();
            streams.0.lock().unwrap().push(tx);
            async move { Ok(rx.boxed()) }.boxed()
        })
    }

    fn opened(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn publish(&self, id: &str) {
        let latest = self.0.lock().unwrap().last().cloned().expect("a stream");
        latest
            .unbounded_send(msg(
                "attacker.x",
                &format!(r#"{{"id":"{id}","payload":{{}}}}"#),
            ))
            .unwrap();
    }
}

/// The value of a sample of the process-wide metrics, by name and subscription.
fn metric(name: &str, uuid: &str) -> Option<f64> {
    let text = crate::metrics::global().render().unwrap();
    let prefix = format!("{name}{{subscription=\"{uuid}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The injected failure: a subscription actor panics with one event in flight and
/// two queued. The supervisor must notice, dead-letter all three (reason `crashed`),
/// count and note the stop, and restart it, which then delivers new events.
#[actix::test]
async fn a_subscription_that_panics_is_dead_lettered_noted_and_restarted() {
    use super::{
        journal::{JournalActor, Retention},
        supervisor::{FailSubscription, GetStatus, SupervisorActor, SupervisorParts},
    };
    crate::telemetry::install_panic_hook();
    let (db, uuid) =
        database_with_subscription("crashes", "https://1.1.1.1/hook", "attacker.>").await;
    let held = Arc::new(Mutex::new(Vec::new()));
    let (_release, released) = watch::channel(false);
    let pool_arrived = Arc::new(Notify::new());
    let pool = HoldingPool {
        held: held.clone(),
        release: released,
        arrived: pool_arrived.clone(),
    }
    .start();
    let streams = Streams::default();
    let stats = Arc::new(WorkerStats::default());
    let journal = JournalActor::new(
        db.clone(),
        Retention {
            dead_letters: chrono::Duration::days(1),
            attempts: chrono::Duration::days(1),
        },
    )
    .start();
    let parts = SupervisorParts {
        db: db.clone(),
        bus: crate::bus::Bus::disabled(),
        source: streams.source(),
        pool: DeliveryPool::from_recipients(vec![pool.recipient()]),
        circuit: super::circuit::CircuitActor::new(db.clone(), crate::bus::Bus::disabled(), 5)
            .start(),
        stats: stats.clone(),
        budget: Budget {
            max_inflight: 1,
            queue: super::schedule::QueueLimits::count(10),
            drain_timeout: Duration::from_secs(1),
        },
        reload_every: Duration::from_secs(3600),
        signals: None,
        stop_requested: None,
        journal: Some(journal),
        secrets: crate::secrets::SecretStore::new(None),
        templates: unused_sandbox(),
    };
    let supervisor = SupervisorActor::create(move |ctx| {
        SupervisorActor::new(parts, actix::AsyncContext::address(ctx))
    });
    let status = || supervisor.send(GetStatus);
    eventually("the subscription to run", async || {
        status().await.unwrap().running.contains_key(&uuid)
    })
    .await;

    for id in ["e0", "e1", "e2"] {
        streams.publish(id);
    }
    until(&pool_arrived, || held.lock().unwrap().len() == 1).await;
    eventually("two events queued", async || {
        metric("decnet_webhook_queue_depth", &uuid) == Some(2.0)
    })
    .await;

    let failed = supervisor.send(FailSubscription(uuid.as_str().into()));
    assert!(failed.await.unwrap(), "the subscription was running");

    // What it held is dead-lettered, each with why.
    eventually("three dead letters", async || {
        crate::db::dead_letters::list(&db, &uuid, 10, 0)
            .await
            .unwrap()
            .1
            == 3
    })
    .await;
    let (letters, _) = crate::db::dead_letters::list(&db, &uuid, 10, 0)
        .await
        .unwrap();
    let mut ids: Vec<&str> = letters.iter().map(|l| l.event_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["e0", "e1", "e2"]);
    let counts = stats.ledger.counts(&uuid).expect("an account");
    assert_eq!(
        (counts.received, counts.dead_lettered),
        (3, 3),
        "{counts:?}"
    );
    assert_eq!((counts.queued, counts.in_flight), (0, 0), "{counts:?}");
    for letter in &letters {
        assert_eq!(letter.reason, "crashed");
        let error = letter.error.as_deref().unwrap_or_default();
        assert!(error.contains("injected failure"), "{error}");
    }
    // Counted, noted on the row, then restarted after the back-off.
    assert_eq!(status().await.unwrap().restarts, 1);
    assert_eq!(
        metric("decnet_webhook_subscription_restarts_total", &uuid),
        Some(1.0)
    );
    eventually("the stop noted on the row", async || {
        let row = crate::db::subscriptions::get(&db, &uuid)
            .await
            .unwrap()
            .unwrap();
        row.last_error
            .is_some_and(|e| e.contains("stopped unexpectedly") && e.contains("injected failure"))
    })
    .await;
    eventually("the restart", async || {
        let status = status().await.unwrap();
        status.running.contains_key(&uuid) && status.restarting.is_empty()
    })
    .await;
    assert_eq!(streams.opened(), 2, "the restarted actor subscribed again");

    // The restarted actor delivers.
    streams.publish("e3");
    until(&pool_arrived, || {
        held.lock().unwrap().iter().any(|id| id == "e3")
    })
    .await;
    // Into the same account as before the crash.
    let counts = stats.ledger.counts(&uuid).expect("an account");
    assert!(counts.balances(), "{counts:?}");
    assert_eq!((counts.received, counts.in_flight), (4, 1), "{counts:?}");
}
