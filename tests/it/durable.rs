//! Durable mode: JetStream consumers, acknowledged after success or dead-lettering.

use std::{collections::HashSet, time::Duration};

use crate::helpers::{worker::WorkerApp, NatsServer, TestReceiver};

const WAIT: Duration = Duration::from_secs(20);

fn ids(rx: &TestReceiver) -> Vec<String> {
    rx.requests()
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id").map(str::to_owned))
        .collect()
}

#[actix_rt::test]
async fn events_published_while_no_worker_runs_are_delivered_after_restart() {
    let mut app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[("webhook_durable", "true")],
    )
    .await;
    let rx = TestReceiver::start();
    app.subscribe("durable", &rx.url(), &["attacker.>"]).await;
    for i in 0..5 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"live-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    rx.wait_for(5, WAIT).await;

    app.stop_worker().await;
    for i in 0..10 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"down-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    app.start_worker().await;
    let got = rx.wait_for(15, WAIT).await;
    let ids = ids(&rx);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 15, "every event once: {ids:?}");
    assert_eq!(got.len(), 15);
    for i in 0..10 {
        assert!(unique.contains(&format!("down-{i}")), "down-{i} missing");
    }
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn overlapping_patterns_deliver_once_in_durable_mode() {
    let app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[("webhook_durable", "true")],
    )
    .await;
    let rx = TestReceiver::start();
    app.subscribe("overlap", &rx.url(), &["attacker.>", "attacker.observed"])
        .await;
    for i in 0..10 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"o-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    app.publish("attacker.end", br#"{"id":"sentinel","payload":{}}"#)
        .await;
    rx.wait_for(11, WAIT).await;
    // The sentinel went through one consumer only; let the other consumer's copies
    // (if any) arrive by waiting for a second sentinel on the overlapping subject.
    app.publish("attacker.observed", br#"{"id":"sentinel-2","payload":{}}"#)
        .await;
    rx.wait_for(12, WAIT).await;
    let ids = ids(&rx);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates: {ids:?}");
    assert_eq!(ids.len(), 12);
    app.stop().await.unwrap();
}
