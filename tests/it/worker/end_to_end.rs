//! The worker end to end: real nats-server, real receivers, real database.

use std::{collections::HashMap, time::Duration};

use crate::helpers::{
    eventually,
    worker::{expected_signature, WorkerApp},
    NatsServer, Reply, TestReceiver, WAIT,
};

#[actix_rt::test]
async fn matching_event_is_delivered_once_signed_and_others_are_not() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    app.subscribe("siem", &rx.url(), &["attacker.>"]).await;

    app.publish("decky.d1.state", br#"{"payload":{"state":"up"}}"#)
        .await;
    app.publish(
        "attacker.observed",
        br#"{"id":"evt-1","ts":"2026-04-24T10:00:00+00:00","type":"first_sighting","payload":{"ip":"203.0.113.7"}}"#,
    )
    .await;
    let got = rx.wait_for(1, WAIT).await;
    // A sentinel after both proves the non-matching one is not merely late.
    app.publish("attacker.scored", br#"{"id":"sentinel","payload":{}}"#)
        .await;
    let got2 = rx.wait_for(2, WAIT).await;
    assert_eq!(got2.len(), 2, "only matching events arrive");
    let req = &got[0];
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        r#"{"id":"evt-1","payload":{"ip":"203.0.113.7"},"topic":"attacker.observed","ts":"2026-04-24T10:00:00+00:00","type":"first_sighting","v":1}"#
    );
    assert_eq!(
        req.header("x-decnet-signature").unwrap(),
        expected_signature(&req.body)
    );
    assert_eq!(req.header("x-decnet-event-id"), Some("evt-1"));
    assert_eq!(
        req.header("x-decnet-event-topic"),
        Some("attacker.observed")
    );
    assert_eq!(req.header("webhook-id"), Some("msg_evt-1"));
    assert_eq!(got2[1].header("x-decnet-event-id"), Some("sentinel"));
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn overlapping_patterns_deliver_an_event_once() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    app.subscribe(
        "overlap",
        &rx.url(),
        &["attacker.>", "attacker.observed", "*.observed"],
    )
    .await;
    app.publish_events("o", 20).await;
    app.publish("attacker.done", br#"{"id":"sentinel","payload":{}}"#)
        .await;
    let got = rx.wait_for(21, WAIT).await;
    let sentinel = eventually(WAIT, "the sentinel", || async {
        rx.requests()
            .iter()
            .position(|r| r.header("x-decnet-event-id") == Some("sentinel"))
    })
    .await;
    let ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("x-decnet-event-id").unwrap().to_owned())
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "duplicates: {counts:?}");
    assert_eq!(ids.len(), 21, "{ids:?}");
    assert!(sentinel < got.len() + 1);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn bare_payloads_and_non_json_bodies_follow_the_event_rules() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    // Not `system.>`: the worker's own heartbeat and change signals live there.
    app.subscribe("sys", &rx.url(), &["system.log"]).await;
    app.publish("system.log", b"\xff\xfe not json").await;
    app.publish("system.log", br#"{"line":"hello"}"#).await;
    let got = rx.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["payload"], serde_json::json!({"line": "hello"}));
    assert_eq!(body["topic"], "system.log");
    assert_eq!(body["type"], "");
    assert_eq!(body["v"], 1);
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["ts"].as_str().is_some_and(|ts| ts.ends_with("+00:00")));
    assert_eq!(rx.count(), 1);
    // Same stream, so the bad one was handled (counted, not delivered) before.
    let undecodable = app
        .worker_stats()
        .undecodable
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(undecodable, 1);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn reload_starts_changes_and_stops_only_what_changed() {
    let app = WorkerApp::start(&[]).await;
    let (a, b, c) = (
        TestReceiver::start(),
        TestReceiver::start(),
        TestReceiver::start(),
    );
    let ua = app.subscribe("a", &a.url(), &["attacker.>"]).await;
    let ub = app.subscribe("b", &b.url(), &["attacker.>"]).await;
    app.wait_running(&[&ua, &ub]).await;

    // Change b's URL (in place) and add c; a must not be touched.
    use sea_orm::{ActiveModelTrait, Set, Unchanged};
    entity::webhook_subscription::ActiveModel {
        uuid: Unchanged(ub.clone()),
        url: Set(c.url()),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
    let uc = app.insert("c", &c.url(), &["decky.*.state"]).await;
    app.signal_changed().await;
    app.wait_running(&[&ua, &ub, &uc]).await;

    app.publish(
        "attacker.observed",
        br#"{"id":"after-change","payload":{}}"#,
    )
    .await;
    a.wait_for(1, WAIT).await;
    c.wait_for(1, WAIT).await;
    assert_eq!(b.count(), 0, "b now posts to c's URL");
    assert_eq!(
        c.requests()[0].header("x-decnet-event-id"),
        Some("after-change")
    );

    // Delete a: it stops; the others keep streaming.
    decnet_webhook::db::subscriptions::delete(&app.db, &ua)
        .await
        .unwrap();
    app.signal_changed().await;
    app.wait_running(&[&ub, &uc]).await;
    app.publish(
        "attacker.observed",
        br#"{"id":"after-delete","payload":{}}"#,
    )
    .await;
    app.publish("decky.d1.state", br#"{"id":"state","payload":{}}"#)
        .await;
    c.wait_for(3, WAIT).await;
    assert_eq!(a.count(), 1, "a deleted: nothing more");
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn threshold_failures_trip_the_circuit_and_reenabling_resumes() {
    let app = WorkerApp::start(&[
        ("webhook_circuit_threshold", "3"),
        ("webhook_retry_schedule", ""),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Status(500));
    let uuid = app.subscribe("failing", &rx.url(), &["attacker.>"]).await;
    let bus = app.nats.client().await;
    let mut trips = bus
        .subscribe(decnet_webhook::bus::CIRCUIT_TRIPPED)
        .await
        .unwrap();
    bus.flush().await.unwrap();

    for i in 0..3 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"f-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
        rx.wait_for(i + 1, WAIT).await;
    }
    use futures::StreamExt;
    let trip = tokio::time::timeout(WAIT, trips.next())
        .await
        .expect("trip announced")
        .unwrap();
    let trip: serde_json::Value = serde_json::from_slice(&trip.payload).unwrap();
    assert_eq!(trip["uuid"], uuid.as_str());
    assert_eq!(trip["name"], "failing");
    assert_eq!(trip["failures"], 3);
    assert!(trip["ts"].as_str().is_some());

    let row = app.row(&uuid).await;
    assert!(!row.enabled);
    assert!(row.auto_disabled_at.is_some());
    assert_eq!(row.consecutive_failures, 3);
    assert_eq!(row.last_error.as_deref(), Some("HTTP 500"));
    app.wait_running(&[]).await;

    // Tripped: nothing more is consumed.
    app.publish(
        "attacker.observed",
        br#"{"id":"while-tripped","payload":{}}"#,
    )
    .await;

    // The operator re-enables (as PATCH enabled:true does) and delivery resumes.
    rx.set_default(Reply::Status(200));
    use sea_orm::{ActiveModelTrait, Set, Unchanged};
    entity::webhook_subscription::ActiveModel {
        uuid: Unchanged(uuid.clone()),
        enabled: Set(true),
        auto_disabled_at: Set(None),
        consecutive_failures: Set(0),
        last_error: Set(None),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .unwrap();
    app.signal_changed().await;
    app.wait_running(&[&uuid]).await;
    app.publish("attacker.observed", br#"{"id":"resumed","payload":{}}"#)
        .await;
    let got = rx.wait_for(4, WAIT).await;
    assert_eq!(got[3].header("x-decnet-event-id"), Some("resumed"));
    let row = eventually(WAIT, "the success stamp", || async {
        let row = app.row(&uuid).await;
        row.last_success_at.is_some().then_some(row)
    })
    .await;
    assert_eq!(row.consecutive_failures, 0);
    assert!(row.enabled);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn gone_trips_at_once() {
    let app = WorkerApp::start(&[("webhook_circuit_threshold", "50")]).await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Status(410));
    let uuid = app.subscribe("gone", &rx.url(), &["attacker.>"]).await;
    app.publish("attacker.observed", br#"{"id":"g","payload":{}}"#)
        .await;
    rx.wait_for(1, WAIT).await;
    let row = eventually(WAIT, "the trip", || async {
        let row = app.row(&uuid).await;
        row.auto_disabled_at.is_some().then_some(row)
    })
    .await;
    assert!(!row.enabled);
    assert_eq!(row.consecutive_failures, 1);
    assert_eq!(rx.count(), 1, "410 is not retried");
    app.wait_running(&[]).await;
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_restarted_bus_is_reconnected_and_delivery_resumes() {
    let mut app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    app.subscribe("steady", &rx.url(), &["attacker.>"]).await;
    app.publish("attacker.observed", br#"{"id":"before","payload":{}}"#)
        .await;
    rx.wait_for(1, WAIT).await;

    app.nats.restart();
    // Publish until the worker is back: each probe is a real event; at least one
    // published after the reconnect must arrive.
    let got = eventually(
        Duration::from_secs(30),
        "delivery after the restart",
        || async {
            app.publish("attacker.observed", br#"{"payload":{"probe":true}}"#)
                .await;
            (rx.count() >= 2).then(|| rx.requests())
        },
    )
    .await;
    assert!(got[1].json()["payload"]["probe"] == true);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_worker_started_before_the_bus_idles_then_delivers() {
    let mut app = WorkerApp::start_on(NatsServer::not_started(), &[]).await;
    let rx = TestReceiver::start();
    let uuid = app.insert("early", &rx.url(), &["attacker.>"]).await;
    // No bus yet: the worker is up, has read the database, and answers.
    eventually(WAIT, "the first reload", || async {
        (app.status().await.reloads >= 1).then_some(())
    })
    .await;
    app.nats.restart();
    // The change signal reaches the worker once it has reconnected.
    eventually(
        Duration::from_secs(30),
        "the worker back on the bus",
        || async {
            app.signal_changed().await;
            app.status().await.running.contains_key(&uuid).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "delivery once the bus is up",
        || async {
            app.publish("attacker.observed", br#"{"payload":{"late":true}}"#)
                .await;
            (rx.count() >= 1).then_some(())
        },
    )
    .await;
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn two_workers_deliver_each_event_exactly_once() {
    let app = WorkerApp::start(&[]).await;
    let second = app.second_worker().await;
    let rx = TestReceiver::start();
    let uuid = app
        .subscribe("shared", &rx.url(), &["attacker.>", "attacker.observed"])
        .await;
    eventually(WAIT, "the second worker's subscription", || async {
        second
            .status()
            .await
            .running
            .contains_key(&uuid)
            .then_some(())
    })
    .await;
    let n = 200;
    app.publish_events("w", n).await;
    app.publish("attacker.end", br#"{"id":"sentinel","payload":{}}"#)
        .await;
    let got = rx.wait_for(n + 1, WAIT).await;
    let mut ids: Vec<&str> = got
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n + 1, "every event once, no duplicates");
    assert_eq!(rx.count(), n + 1);
    second.stop().await.unwrap();
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_hanging_receiver_does_not_hold_up_the_others() {
    let app = WorkerApp::start(&[
        ("webhook_timeout_secs", "30"),
        ("webhook_max_inflight_per_sub", "4"),
        // Room for every event: a slow machine must not make healthy ones overflow.
        ("webhook_queue_per_sub", "100"),
    ])
    .await;
    let dead = TestReceiver::start();
    dead.set_default(Reply::Hang);
    app.subscribe("dead", &dead.url(), &["attacker.>"]).await;
    let healthy: Vec<TestReceiver> = (0..10).map(|_| TestReceiver::start()).collect();
    for (i, rx) in healthy.iter().enumerate() {
        app.subscribe(&format!("healthy-{i}"), &rx.url(), &["attacker.>"])
            .await;
    }
    let n = 50;
    app.publish_events("h", n).await;
    for rx in &healthy {
        let got = rx.wait_for(n, WAIT).await;
        assert_eq!(got.len(), n);
    }
    // The dead one holds only its own budget: 4 in flight, the rest queued.
    assert_eq!(dead.count(), 4);
    let overflow = app
        .worker_stats()
        .overflow
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(overflow, 0);
    // Closing the dead receiver ends its hung requests, so the worker stops at once
    // rather than when its writes are cut off by the end of the test.
    drop(dead);
    app.stop().await.unwrap();
}

/// Subscriptions on one receiver (one host and port) share its connections, yet one
/// whose path hangs holds only its own budget and the others keep delivering.
#[actix_rt::test]
async fn a_hanging_path_does_not_hold_up_other_subscriptions_on_the_same_receiver() {
    let app = WorkerApp::start(&[
        ("webhook_timeout_secs", "30"),
        ("webhook_max_inflight_per_sub", "4"),
        ("webhook_queue_per_sub", "100"),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.route("/dead", Reply::Hang);
    app.subscribe("dead", &rx.url_at("/dead"), &["attacker.>"])
        .await;
    let paths: Vec<String> = (0..3).map(|i| format!("/ok-{i}")).collect();
    for (i, path) in paths.iter().enumerate() {
        app.subscribe(&format!("healthy-{i}"), &rx.url_at(path), &["attacker.>"])
            .await;
    }
    let n = 50;
    app.publish_events("p", n).await;
    let on = |path: &str| rx.requests().iter().filter(|r| r.path == path).count();
    eventually(WAIT, "every healthy path has every event", || async {
        paths.iter().all(|p| on(p) == n).then_some(())
    })
    .await;
    assert_eq!(on("/dead"), 4, "the hanging path holds only its own budget");
    drop(rx);
    app.stop().await.unwrap();
}

/// A burst bigger than the bus client's own buffer (64 Ki messages per subscription)
/// is taken whole into the subscription's queue, not dropped on the way in.
#[actix_rt::test]
async fn a_burst_beyond_the_bus_client_buffer_is_delivered_whole() {
    const N: usize = 100_000;
    let app = WorkerApp::start(&[("webhook_queue_per_sub", "150000")]).await;
    let rx = TestReceiver::start();
    app.subscribe("burst", &rx.url(), &["attacker.>"]).await;
    let payloads: Vec<String> = (0..N)
        .map(|i| format!(r#"{{"id":"b-{i}","payload":{{"n":{i}}}}}"#))
        .collect();
    let nats = &app.nats;
    // Far faster than the worker decodes: the backlog outgrows the client's buffer.
    actix_rt::task::spawn_blocking({
        let nats_port = nats.port;
        move || {
            crate::helpers::NatsServer::publish_burst_to(nats_port, "attacker.observed", &payloads)
        }
    })
    .await
    .unwrap();
    let got = rx.wait_for(N, Duration::from_secs(180)).await;
    let ids: std::collections::HashSet<&str> = got
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id"))
        .collect();
    assert_eq!(ids.len(), N, "every event of the burst arrives");
    assert_eq!(got.len(), N, "and only once");
    app.stop().await.unwrap();
}

/// At the default settings a healthy receiver takes a burst whole: the queue is
/// bounded by memory, not by a count a burst outgrows, and the bus client's buffer
/// is sized from that budget, so nothing is dead-lettered and nothing dropped.
#[actix_rt::test]
async fn a_burst_at_the_default_settings_is_delivered_whole() {
    const N: usize = 20_000;
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    let uuid = app.subscribe("burst", &rx.url(), &["attacker.>"]).await;
    let payloads: Vec<String> = (0..N)
        .map(|i| format!(r#"{{"id":"d-{i}","payload":{{"n":{i},"src":"10.0.0.1"}}}}"#))
        .collect();
    actix_rt::task::spawn_blocking({
        let nats_port = app.nats.port;
        move || {
            crate::helpers::NatsServer::publish_burst_to(nats_port, "attacker.observed", &payloads)
        }
    })
    .await
    .unwrap();
    let got = rx.wait_for(N, Duration::from_secs(180)).await;
    let ids: std::collections::HashSet<&str> = got
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id"))
        .collect();
    assert_eq!(ids.len(), N, "every event of the burst arrives");
    assert_eq!(got.len(), N, "and only once");
    let overflow = app
        .worker_stats()
        .overflow
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(overflow, 0, "none overflowed the queue");
    let (_, dead) = decnet_webhook::db::dead_letters::list(&app.db, &uuid, 1, 0)
        .await
        .unwrap();
    assert_eq!(dead, 0, "none dead-lettered");
    let metrics = decnet_webhook::metrics::global().render().unwrap();
    let fell_behind = metrics
        .lines()
        .find_map(|l| l.strip_prefix("decnet_webhook_bus_fell_behind_total "))
        .map(str::trim);
    assert_eq!(fell_behind, Some("0"), "the bus client dropped none");
    app.stop().await.unwrap();
}
