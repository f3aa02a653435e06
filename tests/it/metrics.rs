//! `GET /metrics`: Prometheus text a scraper parses, whose counters move as
//! deliveries succeed, fail and trip; on the API listener without a token, or on
//! `DECNET_METRICS_BIND` for a worker running alone.

use prometheus_parse::{Scrape, Value};
use serde_json::json;

use crate::helpers::{
    eventually,
    process::Decnet,
    worker::{insert_subscription, WorkerApp},
    AppOptions, NatsServer, Reply, TestApp, TestDb, TestReceiver, WAIT,
};

const DELIVERIES: &str = "decnet_webhook_deliveries_total";
const ATTEMPTS: &str = "decnet_webhook_attempts_total";

/// Parse a `/metrics` body as a Prometheus scraper does.
fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

async fn scrape(url: &str) -> Scrape {
    let resp = reqwest::get(url).await.expect("metrics answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4")
    );
    parse(&resp.text().await.expect("metrics body"))
}

/// The value of the sample of `metric` with exactly these labels.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a single value: {other:?}"),
        })
}

fn sub(uuid: &str) -> (&'static str, &str) {
    ("subscription", uuid)
}

#[actix_rt::test]
async fn worker_metrics_move_as_deliveries_succeed_fail_and_trip() {
    let app = WorkerApp::start(&[
        ("metrics_bind", "127.0.0.1:0"),
        ("webhook_circuit_threshold", "2"),
    ])
    .await;
    let ok_rx = TestReceiver::start();
    let bad_rx = TestReceiver::start();
    bad_rx.set_default(Reply::Status(500));
    let ok = app.subscribe("ok", &ok_rx.url(), &["attacker.>"]).await;
    let bad = app.subscribe("bad", &bad_rx.url(), &["decky.>"]).await;
    let url = app.metrics_url();

    let m = eventually(WAIT, "the bus connected", || async {
        let m = scrape(&url).await;
        (value(&m, "decnet_webhook_bus_connected", &[]) == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(
        value(&m, "decnet_webhook_subscriptions_running", &[]),
        Some(2.0)
    );
    assert!(value(&m, "decnet_webhook_reloads_total", &[]).unwrap_or(0.0) >= 1.0);
    // An idle subscription has no series yet (thousands of them cost nothing).
    assert_eq!(value(&m, "decnet_webhook_queue_depth", &[sub(&ok)]), None);
    assert_eq!(
        value(&m, DELIVERIES, &[sub(&ok), ("outcome", "success")]),
        None
    );

    // A success.
    app.publish("attacker.observed", br#"{"id":"ok-1","payload":{}}"#)
        .await;
    ok_rx.wait_for(1, WAIT).await;
    let m = eventually(WAIT, "the success counted", || async {
        let m = scrape(&url).await;
        (value(&m, DELIVERIES, &[sub(&ok), ("outcome", "success")]) == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(
        value(&m, DELIVERIES, &[sub(&ok), ("outcome", "failure")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, ATTEMPTS, &[sub(&ok), ("result", "2xx")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, ATTEMPTS, &[sub(&ok), ("result", "5xx")]),
        Some(0.0)
    );
    let latency = m
        .samples
        .iter()
        .find(|s| s.metric == "decnet_webhook_delivery_duration_seconds")
        .expect("the latency histogram");
    match &latency.value {
        Value::Histogram(buckets) => {
            let all = buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .expect("+Inf bucket");
            assert_eq!(all.count, 1.0, "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }

    // Two failed deliveries (three attempts each, all 500) trip the other one.
    for id in ["bad-1", "bad-2"] {
        let body = json!({"id": id, "payload": {}}).to_string();
        app.publish("decky.d1.state", body.as_bytes()).await;
    }
    eventually(WAIT, "the trip written", || async {
        (!app.row(&bad).await.enabled).then_some(())
    })
    .await;
    eventually(WAIT, "both dead letters written", || async {
        let (_, total) = decnet_webhook::db::dead_letters::list(&app.db, &bad, 10, 0)
            .await
            .ok()?;
        (total == 2).then_some(())
    })
    .await;
    let m = eventually(WAIT, "the trip and dead letters counted", || async {
        let m = scrape(&url).await;
        let trips = value(&m, "decnet_webhook_circuit_trips_total", &[sub(&bad)]);
        let dead = value(
            &m,
            "decnet_webhook_dead_letters_total",
            &[("reason", "retries_exhausted")],
        );
        (trips == Some(1.0) && dead == Some(2.0)).then_some(m)
    })
    .await;
    assert_eq!(bad_rx.count(), 6);
    assert_eq!(
        value(&m, DELIVERIES, &[sub(&bad), ("outcome", "failure")]),
        Some(2.0)
    );
    assert_eq!(
        value(&m, DELIVERIES, &[sub(&bad), ("outcome", "success")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, ATTEMPTS, &[sub(&bad), ("result", "5xx")]),
        Some(6.0)
    );
    assert_eq!(
        value(&m, "decnet_webhook_circuit_trips_total", &[sub(&ok)]),
        None
    );
    // The tripped one stopped; the other runs on.
    eventually(WAIT, "one subscription running", || async {
        let m = scrape(&url).await;
        (value(&m, "decnet_webhook_subscriptions_running", &[]) == Some(1.0)).then_some(())
    })
    .await;
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn api_serves_metrics_without_a_token_and_outside_the_api_document() {
    let app = TestApp::spawn_default().await;
    let resp = app.get("/metrics", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4")
    );
    let m = parse(&resp.text);
    // The bus is off in this app; nothing runs in the API alone.
    assert_eq!(value(&m, "decnet_webhook_bus_connected", &[]), Some(0.0));
    assert_eq!(
        value(&m, "decnet_webhook_subscriptions_running", &[]),
        Some(0.0)
    );
    assert_eq!(value(&m, "decnet_webhook_reloads_total", &[]), Some(0.0));
    assert!(m.docs.contains_key("decnet_webhook_reloads_total"));

    let resp = app.post("/metrics", None, &json!({})).await;
    assert_eq!(resp.status, 405);
    assert_eq!(
        resp.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    let doc = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert!(!doc.text.contains("/metrics"), "{}", doc.text);
}

#[actix_rt::test]
async fn with_metrics_bind_the_api_leaves_metrics_to_that_address() {
    // Only the setting matters here: the API does not bind it.
    let app = TestApp::spawn(AppOptions::default().setting("metrics_bind", "127.0.0.1:1")).await;
    assert_eq!(app.get("/metrics", None).await.status, 404);
    assert_eq!(app.get("/healthz", None).await.status, 200);
}

#[actix_rt::test]
async fn lone_worker_serves_metrics_only_on_metrics_bind() {
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let rx = TestReceiver::start();
    let uuid = insert_subscription(&db, "scraped", &rx.url(), &["attacker.>"]).await;
    let mut env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("DECNET_WEBHOOK_RELOAD_SECS", "3600".to_owned()),
    ];

    // Without the setting it exposes none, and says so.
    let quiet = Decnet::spawn(&["webhook"], &env, dir.path());
    quiet
        .wait_log("no /metrics endpoint: DECNET_METRICS_BIND is not set")
        .await;
    drop(quiet);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.push(("DECNET_METRICS_BIND", format!("127.0.0.1:{port}")));
    let mut worker = Decnet::spawn(&["webhook"], &env, dir.path());
    worker.wait_log("subscriptions loaded").await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = nats.client().await;
    eventually(WAIT, "a delivery", || async {
        client
            .publish("attacker.observed", r#"{"payload":{}}"#.into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        (rx.count() >= 1).then_some(())
    })
    .await;
    let m = eventually(WAIT, "the delivery counted", || async {
        let m = scrape(&url).await;
        let ok = value(&m, DELIVERIES, &[sub(&uuid), ("outcome", "success")])?;
        (ok >= 1.0).then_some(m)
    })
    .await;
    assert_eq!(value(&m, "decnet_webhook_bus_connected", &[]), Some(1.0));
    assert_eq!(
        value(&m, "decnet_webhook_subscriptions_running", &[]),
        Some(1.0)
    );
    // Its answers carry the API's headers: nothing caches or sniffs them.
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    // Only `/metrics` lives on that address.
    let other = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(worker.exit_code().await, Some(0), "{}", worker.log());
}
