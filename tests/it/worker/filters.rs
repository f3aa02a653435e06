//! Filters route as written, and the ledger accounts for every event published, with
//! two workers sharing a subscription.

use std::time::Duration;

use decnet_webhook::db::{
    self, dead_letters,
    ledger::{self, Counts},
};
use sea_orm::Set;
use serde_json::json;

use crate::helpers::{
    eventually,
    worker::{WorkerApp, SECRET},
    AppOptions, Reply, TestApp, TestReceiver, WAIT,
};

/// A subscription to `attacker.>` with `filter`, running.
async fn subscribe_filtered(app: &WorkerApp, name: &str, url: &str, filter: &str) -> String {
    let mut row = db::subscriptions::new_row(name, url, SECRET, &["attacker.>".to_owned()], true);
    row.filter = Set(Some(filter.to_owned()));
    app.subscribe_row(row).await
}

/// The ledger summed over every worker's last report.
async fn totals(app: &WorkerApp, uuid: &str) -> (Counts, usize) {
    let shares = ledger::shares(&app.db, uuid).await.expect("ledger reads");
    let mut sum = Counts::default();
    for s in &shares {
        assert!(
            s.counts.balances(),
            "a worker's share balances: {:?}",
            s.counts
        );
        sum.add(&s.counts);
    }
    (sum, shares.len())
}

/// Wait until the written ledger shows `received` events, none queued or in flight.
async fn settled(app: &WorkerApp, uuid: &str, received: u64) -> (Counts, usize) {
    eventually(WAIT, "the ledger to account for every event", || async {
        let (sum, workers) = totals(app, uuid).await;
        if sum.received == received && sum.queued == 0 && sum.in_flight == 0 {
            Ok((sum, workers))
        } else {
            Err(format!("{sum:?}"))
        }
    })
    .await
}

async fn publish_json(app: &WorkerApp, subject: &str, body: serde_json::Value) {
    app.publish(subject, body.to_string().as_bytes()).await;
}

#[actix_rt::test]
async fn filters_route_as_written() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    let filter = r#"payload.score >= 80 and payload.service in ["ssh", "rdp"]"#;
    let uuid = subscribe_filtered(&app, "hot", &rx.url(), filter).await;
    let events = [
        ("hot-ssh", 91, "ssh", true),
        ("cold-ssh", 12, "ssh", false),
        ("hot-http", 95, "http", false),
        ("hot-rdp", 80, "rdp", true),
        ("warm-rdp", 79, "rdp", false),
    ];
    for (id, score, service, _) in events {
        let body = json!({"id": id, "payload": {"score": score, "service": service}});
        publish_json(&app, "attacker.scored", body).await;
    }
    let (sum, _) = settled(&app, &uuid, events.len() as u64).await;
    assert_eq!(sum.delivered, 2, "{sum:?}");
    assert_eq!(sum.filtered, 3, "{sum:?}");
    assert_eq!(sum.filter_errors, 0);
    let mut sent: Vec<String> = rx
        .requests()
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id").map(str::to_owned))
        .collect();
    sent.sort();
    let mut matching: Vec<&str> = events.iter().filter(|e| e.3).map(|e| e.0).collect();
    matching.sort();
    assert_eq!(
        sent, matching,
        "the matching events, and nothing else, were sent"
    );
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_filter_that_fails_at_run_time_counts_and_does_not_stall() {
    let app = WorkerApp::start(&[("metrics_bind", "127.0.0.1:0")]).await;
    let rx = TestReceiver::start();
    // Events without a score make the comparison fail.
    let uuid = subscribe_filtered(&app, "strict", &rx.url(), "payload.score >= 80").await;
    for i in 0..20 {
        let body = json!({"id": format!("bad-{i}"), "payload": {"service": "ssh"}});
        publish_json(&app, "attacker.observed", body).await;
    }
    publish_json(
        &app,
        "attacker.scored",
        json!({"id": "good", "payload": {"score": 99}}),
    )
    .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-decnet-event-id"), Some("good"));
    let (sum, _) = settled(&app, &uuid, 21).await;
    assert_eq!(
        (sum.filtered, sum.filter_errors, sum.delivered),
        (20, 20, 1)
    );
    assert_eq!(rx.count(), 1, "no failing event was sent");
    // Prometheus carries the same figures.
    let text = reqwest::get(app.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |outcome: &str| {
        format!(r#"decnet_webhook_events_total{{outcome="{outcome}",subscription="{uuid}"}}"#)
    };
    for (outcome, n) in [("received", 21), ("filter_error", 20), ("delivered", 1)] {
        assert!(
            text.lines().any(|l| l == format!("{} {n}", line(outcome))),
            "{outcome} {n} in\n{text}"
        );
    }
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_mixed_stream_through_a_flapping_receiver_is_accounted_for_exactly() {
    let settings = [
        ("webhook_max_inflight_per_sub", "1"),
        ("webhook_queue_per_sub", "2"),
        ("webhook_retry_schedule", "0.01,0.01"),
        ("webhook_circuit_threshold", "100000"),
    ];
    let app = WorkerApp::start(&settings).await;
    let second = app.second_worker().await;
    let rx = TestReceiver::start();
    // Flapping: slow successes, failures that a retry gets past, failures for good
    // (a 400, or 503 three times), over and over.
    let cycle = [
        Reply::Delay(Duration::from_millis(40), 200),
        Reply::Status(503),
        Reply::Status(200),
        Reply::Status(400),
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(503),
        Reply::Delay(Duration::from_millis(20), 204),
    ];
    rx.script(cycle.iter().cycle().take(cycle.len() * 40).cloned());
    let uuid = subscribe_filtered(&app, "mixed", &rx.url(), r#"payload.kind != "noise""#).await;
    eventually(WAIT, "the second worker's subscription", || async {
        second
            .status()
            .await
            .running
            .contains_key(&uuid)
            .then_some(())
    })
    .await;

    let (mut published, mut noise, mut undecodable) = (0u64, 0u64, 0u64);
    for i in 0..120 {
        match i % 6 {
            0 => {
                app.publish("attacker.observed", format!("not json {i}").as_bytes())
                    .await;
                undecodable += 1;
            }
            1 => {
                let body = json!({"id": format!("n-{i}"), "payload": {"kind": "noise"}});
                publish_json(&app, "attacker.observed", body).await;
                noise += 1;
            }
            _ => {
                let body = json!({"id": format!("e-{i}"), "payload": {"kind": "login"}});
                publish_json(&app, "attacker.observed", body).await;
            }
        }
        published += 1;
    }

    let (sum, workers) = settled(&app, &uuid, published).await;
    assert_eq!(workers, 2, "both workers reported: {sum:?}");
    assert!(sum.balances(), "{sum:?}");
    assert_eq!(sum.filtered, noise, "{sum:?}");
    assert_eq!(sum.filter_errors, 0);
    assert_eq!(sum.released, 0);
    let reason = |r: &str| sum.dead_lettered_by_reason.get(r).copied().unwrap_or(0);
    assert_eq!(reason("undecodable"), undecodable, "{sum:?}");
    assert!(
        reason("queue_overflow") > 0,
        "the burst overflowed a queue: {sum:?}"
    );
    assert!(
        reason("non_retryable") + reason("retries_exhausted") > 0,
        "some deliveries failed for good: {sum:?}"
    );
    // What the receiver accepted is what was counted delivered; nothing filtered
    // reached it.
    let requests = rx.requests();
    let accepted = requests.iter().filter(|r| r.accepted()).count() as u64;
    assert_eq!(sum.delivered, accepted, "{sum:?}");
    assert!(requests.iter().all(|r| !r
        .header("x-decnet-event-id")
        .unwrap_or("")
        .starts_with("n-")));
    // Every dead letter counted is in the store.
    let stored = eventually(WAIT, "the dead letters written", || async {
        let (_, total) = dead_letters::list(&app.db, &uuid, 1, 0).await.ok()?;
        (total == sum.dead_lettered).then_some(total)
    })
    .await;
    assert_eq!(stored, sum.dead_lettered);

    // The API, in a process of its own on the same database, answers the same sums.
    let api = TestApp::spawn(AppOptions::default().setting("database_url", &app.test_db.url)).await;
    let token = api.admin_token().await;
    let got = api
        .get(&format!("/api/v1/webhooks/{uuid}/ledger"), Some(&token))
        .await
        .json();
    assert_eq!(got["received"], published);
    assert_eq!(got["filtered"], noise);
    assert_eq!(got["delivered"], sum.delivered);
    assert_eq!(got["dead_lettered"], sum.dead_lettered);
    assert_eq!(got["workers"].as_array().map(Vec::len), Some(2));

    second.stop().await.unwrap();
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_changed_filter_applies_without_a_restart() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    let uuid = subscribe_filtered(&app, "swap", &rx.url(), r#"payload.decky == "decky-01""#).await;
    let sighting = |id: &str, decky: &str| json!({"id": id, "payload": {"decky": decky}});
    publish_json(&app, "attacker.observed", sighting("a-1", "decky-01")).await;
    publish_json(&app, "attacker.observed", sighting("a-2", "decky-02")).await;
    settled(&app, &uuid, 2).await;
    // The API writes the row and signals; the running actor takes the new filter.
    let mut row: entity::webhook_subscription::ActiveModel = app.row(&uuid).await.into();
    row.filter = Set(Some(r#"payload.decky == "decky-02""#.to_owned()));
    row.updated_at = Set(chrono::Utc::now());
    db::subscriptions::update(&app.db, row).await.unwrap();
    app.signal_changed().await;
    eventually(WAIT, "the new filter to apply", || async {
        let id = format!("b-{}", rx.count());
        publish_json(&app, "attacker.observed", sighting(&id, "decky-02")).await;
        rx.requests()
            .iter()
            .any(|r| {
                r.header("x-decnet-event-id")
                    .is_some_and(|i| i.starts_with("b-"))
            })
            .then_some(())
    })
    .await;
    let ids: Vec<String> = rx
        .requests()
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id").map(str::to_owned))
        .collect();
    assert_eq!(ids[0], "a-1");
    assert!(!ids.iter().any(|i| i == "a-2"), "{ids:?}");
    assert_eq!(app.status().await.restarts, 0);
    app.stop().await.unwrap();
}
