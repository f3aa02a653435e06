//! Per-subscription delivery options in the worker: ordered delivery, batches, the
//! rate limit and shaped bodies. Real nats-server, real receivers, real database.

use decnet_webhook::{
    db::{dead_letters, subscriptions},
    domain::Event,
    shape::Shape,
};
use entity::webhook_subscription::ActiveModel;
use sea_orm::Set;
use serde_json::Value;

use crate::helpers::{
    eventually,
    worker::{expected_signature, WorkerApp, SECRET},
    Reply, TestReceiver, WAIT,
};

/// Insert a subscription with its options set, signal the worker and wait until it
/// runs. The row is written whole, so no reload can start it without its options.
async fn subscribe_with(
    app: &WorkerApp,
    name: &str,
    url: &str,
    options: impl FnOnce(&mut ActiveModel),
) -> String {
    let mut row = subscriptions::new_row(name, url, SECRET, &["attacker.>".to_owned()], true);
    options(&mut row);
    app.subscribe_row(row).await
}

async fn publish_numbered(app: &WorkerApp, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        let body = format!(r#"{{"id":"{id}","payload":{{"n":"{id}"}}}}"#);
        app.publish("attacker.observed", body.as_bytes()).await;
    }
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("e{i:03}")).collect()
}

/// The event ids of a batch body, in order.
fn batch_ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).expect("batch is JSON");
    let Value::Object(obj) = &v else {
        panic!("batch is an object: {v}")
    };
    assert_eq!(obj.len(), 1, "a batch has only `events`: {v}");
    v["events"]
        .as_array()
        .expect("events is a list")
        .iter()
        .map(|e| e["id"].as_str().expect("event id").to_owned())
        .collect()
}

#[actix_rt::test]
async fn ordered_delivery_keeps_publish_order_under_retries() {
    let app = WorkerApp::start(&[
        ("webhook_retry_schedule", "0,0,0"),
        ("webhook_circuit_threshold", "100"),
    ])
    .await;
    let rx = TestReceiver::start();
    // Failures spread through the run: each retried event holds the ones behind it.
    rx.script(
        [200, 503, 200, 503, 503, 200, 200, 500, 200, 429, 503, 200]
            .into_iter()
            .cycle()
            .take(120)
            .map(Reply::Status),
    );
    subscribe_with(&app, "ordered", &rx.url(), |row| row.ordered = Set(true)).await;
    let sent = ids(60);
    publish_numbered(&app, sent.clone()).await;

    let accepted = eventually(WAIT, "every event accepted", || async {
        let got: Vec<String> = rx
            .requests()
            .iter()
            .filter(|r| r.accepted())
            .map(|r| r.header("x-decnet-event-id").unwrap_or_default().to_owned())
            .collect();
        (got.len() >= sent.len()).then_some(got)
    })
    .await;
    assert_eq!(accepted, sent, "accepted in publish order, each once");
    // Every request, failed ones included, went out in order: a retry is never
    // overtaken by the event behind it.
    let mut all: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("x-decnet-event-id").unwrap_or_default().to_owned())
        .collect();
    all.dedup();
    assert_eq!(all, sent);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn batches_respect_size_and_linger_and_verify() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    subscribe_with(&app, "batched", &rx.url(), |row| {
        row.batch_max = Set(Some(5));
        row.batch_linger_ms = Set(Some(1500));
    })
    .await;
    let sent = ids(12);
    publish_numbered(&app, sent.clone()).await;

    // Two full batches go at once; the last two wait for the linger, then go too.
    let reqs = rx.wait_for(3, WAIT).await;
    let batches: Vec<Vec<String>> = reqs.iter().map(|r| batch_ids(&r.body)).collect();
    assert!(batches.iter().all(|b| (1..=5).contains(&b.len())));
    assert_eq!(batches.concat(), sent, "every event once, in order");
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 2]);
    for r in &reqs {
        assert_eq!(
            r.header("x-decnet-signature").unwrap(),
            expected_signature(&r.body)
        );
        assert!(r.standard_verifies(SECRET), "standard signature verifies");
        let batch_id = r.header("x-decnet-event-id").unwrap();
        assert_eq!(r.header("webhook-id"), Some(&*format!("msg_{batch_id}")));
        assert_eq!(r.header("x-decnet-event-topic"), Some("batch"));
        // The bodies inside are the envelopes, byte for byte.
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        for e in v["events"].as_array().unwrap() {
            let id = e["id"].as_str().unwrap();
            let envelope = Event::new(
                id.into(),
                "attacker.observed".into(),
                e["ts"].as_str().unwrap().into(),
                String::new(),
                serde_json::json!({ "n": id }),
            );
            assert_eq!(e, &serde_json::from_slice::<Value>(&envelope.body).unwrap());
        }
    }
    let distinct: std::collections::HashSet<_> = reqs
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(distinct.len(), 3, "each batch has its own id");
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_failed_batch_is_retried_whole_and_counts_once() {
    let app = WorkerApp::start(&[
        ("webhook_retry_schedule", "0"),
        ("webhook_circuit_threshold", "3"),
    ])
    .await;
    let rx = TestReceiver::start();
    // First batch: 503 then 200 (retried whole). Second batch: fails both attempts.
    rx.script([503, 200, 503, 503].map(Reply::Status));
    let uuid = subscribe_with(&app, "batch-fail", &rx.url(), |row| {
        row.batch_max = Set(Some(4));
        row.batch_linger_ms = Set(Some(5000));
    })
    .await;
    publish_numbered(&app, ids(4)).await;
    let reqs = rx.wait_for(2, WAIT).await;
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "the retry resends the same batch"
    );
    assert_eq!(
        reqs[0].header("webhook-id"),
        reqs[1].header("webhook-id"),
        "under the same id"
    );
    publish_numbered(&app, (4..8).map(|i| format!("e{i:03}"))).await;
    rx.wait_for(4, WAIT).await;
    let dead = eventually(WAIT, "the failed batch's events dead-lettered", || async {
        let (rows, total) = dead_letters::list(&app.db, &uuid, 100, 0).await.ok()?;
        (total == 4).then_some(rows)
    })
    .await;
    let mut dead_ids: Vec<String> = dead.iter().map(|d| d.event_id.clone()).collect();
    dead_ids.sort();
    assert_eq!(
        dead_ids,
        (4..8).map(|i| format!("e{i:03}")).collect::<Vec<_>>()
    );
    assert!(dead.iter().all(|d| d.reason == "retries_exhausted"));
    let row = eventually(WAIT, "the failure recorded", || async {
        let row = app.row(&uuid).await;
        (row.last_failure_at.is_some()).then_some(row)
    })
    .await;
    assert_eq!(
        row.consecutive_failures, 1,
        "one failed batch is one failure"
    );
    assert!(row.enabled);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn rate_limited_subscription_delivers_all_in_order_without_holding_others() {
    let app = WorkerApp::start(&[]).await;
    let limited = TestReceiver::start();
    let free = TestReceiver::start();
    subscribe_with(&app, "limited", &limited.url(), |row| {
        row.rate_limit_per_sec = Set(Some(20.0));
        row.ordered = Set(true);
    })
    .await;
    app.subscribe("free", &free.url(), &["attacker.>"]).await;
    let sent = ids(40);
    publish_numbered(&app, sent.clone()).await;

    // The unlimited subscription has everything while the limited one (2 s of
    // tokens for 40 events) is still working through its own queue.
    free.wait_for(40, WAIT).await;
    assert!(
        limited.count() < 40,
        "the rate limit holds back only its own subscription"
    );
    let got = limited.wait_for(40, WAIT).await;
    let got: Vec<String> = got
        .iter()
        .map(|r| r.header("x-decnet-event-id").unwrap().to_owned())
        .collect();
    assert_eq!(got, sent, "all delivered, once, in order");
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_template_that_fails_to_render_dead_letters_that_event_only() {
    let app = WorkerApp::start(&[("webhook_circuit_threshold", "1")]).await;
    let rx = TestReceiver::start();
    let template = r#"{% if payload.n == "e001" %}not json{% else %}{"event": {{ id | tojson }}, "topic": {{ topic | tojson }}}{% endif %}"#;
    let uuid = subscribe_with(&app, "templated", &rx.url(), |row| {
        row.shape = Set("template".into());
        row.template = Set(Some(template.into()));
    })
    .await;
    publish_numbered(&app, ids(3)).await;

    let reqs = rx.wait_for(2, WAIT).await;
    let mut bodies: Vec<Value> = reqs.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["event"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        bodies,
        [
            serde_json::json!({"event": "e000", "topic": "attacker.observed"}),
            serde_json::json!({"event": "e002", "topic": "attacker.observed"}),
        ]
    );
    for r in &reqs {
        assert_eq!(
            r.header("x-decnet-signature").unwrap(),
            expected_signature(&r.body),
            "the shaped body is what is signed"
        );
    }
    let dead = eventually(WAIT, "the render failure dead-lettered", || async {
        let (rows, total) = dead_letters::list(&app.db, &uuid, 10, 0).await.ok()?;
        (total == 1).then_some(rows)
    })
    .await;
    assert_eq!(dead[0].event_id, "e001");
    assert_eq!(dead[0].reason, "render_failed");
    assert!(dead[0].error.as_deref().is_some_and(|e| !e.is_empty()));
    // Not a receiver failure: the circuit (threshold 1) stays closed, and the
    // subscription keeps delivering.
    publish_numbered(&app, ["e003".to_owned()]).await;
    rx.wait_for(3, WAIT).await;
    let row = app.row(&uuid).await;
    assert!(row.enabled && row.auto_disabled_at.is_none());
    assert_eq!(row.consecutive_failures, 0);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_slack_subscription_receives_the_shape_of_each_event() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    subscribe_with(&app, "chat", &rx.url(), |row| {
        row.shape = Set("slack".into())
    })
    .await;
    let body = br#"{"id":"s-1","ts":"2026-04-24T10:00:00+00:00","type":"first_sighting","payload":{"ip":"203.0.113.7"}}"#;
    app.publish("attacker.observed", body).await;
    let req = &rx.wait_for(1, WAIT).await[0];
    let event = Event::from_bus("attacker.observed", body, None, chrono::Utc::now()).unwrap();
    let expected = Shape::from_row("slack", None, &Default::default())
        .unwrap()
        .render(&event)
        .unwrap();
    assert_eq!(req.body, expected, "the worker sends the shape's rendering");
    assert!(req.json()["text"].is_string());
    assert_eq!(req.header("x-decnet-event-id"), Some("s-1"));
    assert_eq!(
        req.header("x-decnet-signature").unwrap(),
        expected_signature(&req.body)
    );
    app.stop().await.unwrap();
}
