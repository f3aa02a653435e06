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
};

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
    };
    let stats = Arc::new(WorkerStats::default());
    SubscriptionActor::new(
        spec.clone(),
        spec.target().unwrap(),
        Budget {
            max_inflight: 2,
            queue: 3,
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
    }
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
    let db = crate::db::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap();
    let uuid = uuid::Uuid::new_v4().to_string();
    crate::db::subscriptions::insert(&db, {
        let mut row = crate::db::subscriptions::new_row(
            "c",
            "https://1.1.1.1/",
            &"s".repeat(32),
            &["a.>".to_owned()],
            true,
        );
        row.uuid = sea_orm::Set(uuid.clone());
        row
    })
    .await
    .unwrap();
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
    let db = crate::db::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap();
    let uuid = uuid::Uuid::new_v4().to_string();
    crate::db::subscriptions::insert(&db, {
        let mut row = crate::db::subscriptions::new_row(
            "l",
            "https://1.1.1.1/",
            &"s".repeat(32),
            &["a.>".to_owned()],
            true,
        );
        row.uuid = sea_orm::Set(uuid.clone());
        row
    })
    .await
    .unwrap();
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
