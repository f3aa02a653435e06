//! Nothing lost: what cannot be delivered is kept in the dead-letter store.

use std::time::Duration;

use decnet_webhook::db::dead_letters;

use crate::helpers::{eventually, worker::WorkerApp, Reply, TestReceiver, WAIT};

async fn dead(app: &WorkerApp, uuid: &str, n: usize) -> Vec<dead_letters::StoredDeadLetter> {
    eventually(WAIT, "dead letters", || async {
        let (rows, total) = dead_letters::list(&app.db, uuid, 1000, 0).await.ok()?;
        (total as usize >= n).then_some(rows)
    })
    .await
}

#[actix_rt::test]
async fn failed_deliveries_are_kept_with_their_exact_body() {
    let app = WorkerApp::start(&[("webhook_circuit_threshold", "100")]).await;
    let rx = TestReceiver::start();
    rx.script([
        Reply::Status(400),
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(503),
    ]);
    let uuid = app.subscribe("dl", &rx.url(), &["attacker.>"]).await;
    app.publish(
        "attacker.observed",
        br#"{"id":"bad-request","payload":{"k":1}}"#,
    )
    .await;
    rx.wait_for(1, WAIT).await;
    app.publish(
        "attacker.observed",
        br#"{"id":"unavailable","payload":{"k":2}}"#,
    )
    .await;
    rx.wait_for(4, WAIT).await;
    let rows = dead(&app, &uuid, 2).await;
    let by_id = |id: &str| rows.iter().find(|r| r.event_id == id).cloned().unwrap();
    let first = by_id("bad-request");
    assert_eq!(first.reason, "non_retryable");
    assert_eq!(first.status, Some(400));
    assert_eq!(first.attempts, 1);
    assert_eq!(
        first.body,
        rx.requests()[0].body.to_vec(),
        "the exact body sent"
    );
    let second = by_id("unavailable");
    assert_eq!(second.reason, "retries_exhausted");
    assert_eq!(second.status, Some(503));
    assert_eq!(second.attempts, 3);
    assert_eq!(second.topic, "attacker.observed");
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn overflow_and_undecodable_input_are_kept() {
    let app = WorkerApp::start(&[
        ("webhook_max_inflight_per_sub", "1"),
        ("webhook_queue_per_sub", "1"),
        ("webhook_timeout_secs", "30"),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Hang);
    let uuid = app.subscribe("full", &rx.url(), &["attacker.>"]).await;
    app.publish("attacker.observed", b"{not json").await;
    for i in 0..5 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"o-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    // One in flight, one queued, three over the bound; plus the undecodable one.
    let rows = dead(&app, &uuid, 4).await;
    let mut reasons: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "queue_overflow",
            "queue_overflow",
            "queue_overflow",
            "undecodable"
        ]
    );
    let raw = rows.iter().find(|r| r.reason == "undecodable").unwrap();
    assert_eq!(raw.body, b"{not json");
    assert!(raw
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("not JSON"));
}

#[actix_rt::test]
async fn events_queued_when_the_circuit_trips_are_kept() {
    let app = WorkerApp::start(&[
        ("webhook_circuit_threshold", "1"),
        ("webhook_retry_schedule", ""),
        ("webhook_max_inflight_per_sub", "1"),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Delay(Duration::from_millis(300), 500));
    let uuid = app.subscribe("trip", &rx.url(), &["attacker.>"]).await;
    for i in 0..4 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"t-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    let rows = dead(&app, &uuid, 4).await;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.reason == "retries_exhausted")
        .map(|r| r.event_id.as_str())
        .collect();
    let tripped = rows
        .iter()
        .filter(|r| r.reason == "circuit_tripped")
        .count();
    assert_eq!(failed, ["t-0"]);
    assert_eq!(tripped, 3, "{rows:?}");
    assert_eq!(rx.count(), 1);
    assert!(!app.row(&uuid).await.enabled);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn every_attempt_is_in_the_delivery_log() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    rx.script([Reply::Status(503), Reply::Status(429)]);
    let uuid = app.subscribe("logged", &rx.url(), &["attacker.>"]).await;
    app.publish("attacker.observed", br#"{"id":"logged-1","payload":{}}"#)
        .await;
    rx.wait_for(3, WAIT).await;
    let rows = eventually(WAIT, "three logged attempts", || async {
        let (rows, total) = decnet_webhook::db::delivery_log::list(&app.db, &uuid, None, 10, 0)
            .await
            .ok()?;
        (total == 3).then_some(rows)
    })
    .await;
    // Newest first.
    let summary: Vec<(i32, Option<i32>, bool)> =
        rows.iter().map(|r| (r.attempt, r.status, r.ok)).collect();
    assert_eq!(
        summary,
        [
            (3, Some(200), true),
            (2, Some(429), false),
            (1, Some(503), false)
        ]
    );
    assert!(rows.iter().all(|r| r.event_id == "logged-1"));
    assert_eq!(rows[2].error.as_deref(), Some("HTTP 503"));
    let (failed, _) = decnet_webhook::db::delivery_log::list(&app.db, &uuid, Some(false), 10, 0)
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn entries_past_retention_are_swept_at_start() {
    use sea_orm::Set;
    let test_db = crate::helpers::TestDb::new().await;
    let db = test_db.connect().await;
    let old = chrono::Utc::now() - chrono::Duration::days(8);
    let row = |id: &str, at| entity::dead_letter::ActiveModel {
        uuid: Set(uuid::Uuid::new_v4().to_string()),
        subscription_uuid: Set("s-1".into()),
        event_id: Set(id.into()),
        topic: Set("attacker.x".into()),
        body: Set(b"{}".to_vec()),
        reason: Set("retries_exhausted".into()),
        error: Set(None),
        status: Set(None),
        attempts: Set(1),
        created_at: Set(at),
    };
    dead_letters::insert_many(&db, vec![row("old", old), row("new", chrono::Utc::now())])
        .await
        .unwrap();
    let app = WorkerApp::start_with_db(
        crate::helpers::NatsServer::start(),
        test_db,
        db,
        &[("webhook_dead_letter_days", "7")],
    )
    .await;
    let left = eventually(WAIT, "the sweep", || async {
        let (rows, total) = dead_letters::list(&app.db, "s-1", 10, 0).await.ok()?;
        (total == 1).then_some(rows)
    })
    .await;
    assert_eq!(left[0].event_id, "new");
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_delivery_cut_short_by_shutdown_is_kept_as_shutdown() {
    // The retry waits a minute: the worker stops long before it.
    let mut app = WorkerApp::start(&[
        ("webhook_circuit_threshold", "100"),
        ("webhook_retry_schedule", "60"),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.script([Reply::Status(503)]);
    let uuid = app.subscribe("cut", &rx.url(), &["attacker.>"]).await;
    app.publish(
        "attacker.observed",
        br#"{"id":"cut-short","payload":{"k":1}}"#,
    )
    .await;
    rx.wait_for(1, WAIT).await;
    app.stop_worker().await;
    let rows = dead(&app, &uuid, 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].event_id, "cut-short");
    assert_eq!(rows[0].reason, "shutdown", "not retries_exhausted");
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(rows[0].status, Some(503));
    app.stop().await.unwrap();
}

/// An event's body with a payload of `bytes` characters.
fn big_event(id: &str, bytes: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","payload":{{"blob":"{}"}}}}"#,
        "x".repeat(bytes)
    )
    .into_bytes()
}

/// The queue is bounded by memory: events of about 30 KB fill a 64 KiB budget with
/// two (a waiting event weighs little more than its body: its decoded payload, as big
/// again, is let go), and the rest overflow into counted dead letters.
#[actix_rt::test]
async fn the_queue_byte_budget_overflows_into_dead_letters() {
    let app = WorkerApp::start(&[
        ("webhook_max_inflight_per_sub", "1"),
        ("webhook_queue_bytes_per_sub", "65536"),
        ("webhook_timeout_secs", "30"),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Hang);
    let uuid = app.subscribe("full", &rx.url(), &["attacker.>"]).await;
    for i in 0..7 {
        app.publish("attacker.observed", &big_event(&format!("b-{i}"), 30_000))
            .await;
    }
    // One in flight, two queued, four over the budget.
    let rows = dead(&app, &uuid, 4).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.reason == "queue_overflow"));
    let overflow = app
        .worker_stats()
        .overflow
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(overflow, 4);
    eventually(WAIT, "one in flight", || async {
        (rx.count() == 1).then_some(())
    })
    .await;
    drop(rx);
    app.stop().await.unwrap();
}

/// The process-wide budget binds across subscriptions: each could queue more on
/// its own, yet together their queues hold two events of about 30 KB in 64 KiB.
#[actix_rt::test]
async fn the_total_queue_budget_is_shared_by_every_subscription() {
    let app = WorkerApp::start(&[
        ("webhook_max_inflight_per_sub", "1"),
        ("webhook_queue_bytes_total", "65536"),
        ("webhook_timeout_secs", "30"),
    ])
    .await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Hang);
    let a = app.subscribe("a", &rx.url(), &["attacker.>"]).await;
    let b = app.subscribe("b", &rx.url(), &["attacker.>"]).await;
    let n = 5;
    for i in 0..n {
        app.publish("attacker.observed", &big_event(&format!("t-{i}"), 30_000))
            .await;
    }
    // Of 2 × 5 copies: one in flight in each, two queued between them, six over.
    let rows = eventually(WAIT, "six overflowed", || async {
        let (_, in_a) = dead_letters::list(&app.db, &a, 100, 0).await.ok()?;
        let (_, in_b) = dead_letters::list(&app.db, &b, 100, 0).await.ok()?;
        (in_a + in_b >= 6).then_some(in_a + in_b)
    })
    .await;
    assert_eq!(rows, 6);
    let overflow = app
        .worker_stats()
        .overflow
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(overflow, 6);
    eventually(WAIT, "one in flight each", || async {
        (rx.count() == 2).then_some(())
    })
    .await;
    drop(rx);
    app.stop().await.unwrap();
}
