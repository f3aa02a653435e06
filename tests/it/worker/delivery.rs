//! The delivery client against real local receivers.

use std::{
    cell::Cell,
    rc::Rc,
    time::{Duration, SystemTime},
};

use base64::Engine as _;
use decnet_webhook::{
    config::Secret,
    delivery::{signing, DeliveryClient, DeliveryOutcome, DeliverySettings, Target},
    domain::{event::Event, webhook_url::WebhookUrl},
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    sync::watch,
};

use crate::helpers::{Recorded, Reply, TestReceiver, WAIT};

const SECRET: &str = "a-receiver-secret-of-some-length";
/// Requests the test clients keep in flight to one destination.
const PER_DESTINATION: usize = 64;

fn client(schedule_ms: &[u64], timeout: Duration) -> DeliveryClient {
    DeliveryClient::new(DeliverySettings {
        timeout,
        retry_schedule: schedule_ms
            .iter()
            .copied()
            .map(Duration::from_millis)
            .collect(),
        allow_private: true,
        per_destination: PER_DESTINATION,
        splunk_ack_timeout: Duration::from_secs(300),
    })
}

fn target(url: &str, secrets: &[&str]) -> Target {
    Target::new(
        WebhookUrl::parse(url).expect("valid url"),
        secrets.iter().copied().map(Secret::new).collect(),
    )
}

fn event() -> Event {
    Event::new(
        "6f1c2a3b4d5e4f60a1b2c3d4e5f60718".into(),
        "attacker.observed".into(),
        "2026-04-24T10:00:00+00:00".into(),
        "first_sighting".into(),
        json!({"attacker_ip": "203.0.113.7", "decky": "decky-01", "note": "café"}),
    )
}

/// A stop signal that never fires (the sender lives as long as the test).
fn running() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

async fn deliver(client: &DeliveryClient, target: &Target) -> DeliveryOutcome {
    let (_tx, stop) = running();
    client.deliver(target, &event(), &stop).await
}

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Verify `webhook-*` headers with the Standard Webhooks reference library.
fn standard_verifies(secret: &str, req: &Recorded) -> bool {
    req.standard_verifies(secret)
}

#[actix_rt::test]
async fn a_2xx_is_delivered_once_with_every_header() {
    let receiver = TestReceiver::start();
    let client = client(&[50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(out.ok(), "{out:?}");
    assert_eq!((out.status, out.attempts, out.gone), (Some(200), 1, false));
    assert_eq!(out.error, None);
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    let event = event();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(req.body, event.body, "the body is sent unchanged");
    assert_eq!(
        req.header("host"),
        Some(format!("127.0.0.1:{}", receiver.port).as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("user-agent"),
        Some(concat!("decnet-webhook/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(req.header("x-decnet-event-id"), Some(event.id.as_str()));
    assert_eq!(
        req.header("x-decnet-event-topic"),
        Some("attacker.observed")
    );
    assert_eq!(
        req.header("webhook-id"),
        Some("msg_6f1c2a3b4d5e4f60a1b2c3d4e5f60718")
    );
    let ts: u64 = req
        .header("x-decnet-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("numeric timestamp");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    assert!(
        ts.abs_diff(now) < 300,
        "timestamp {ts} is not the send time"
    );
    assert_eq!(
        req.header("webhook-timestamp"),
        req.header("x-decnet-timestamp")
    );
    // Recomputed over the raw recorded body, as a receiver does.
    assert_eq!(
        req.header("x-decnet-signature"),
        Some(format!("sha256={}", hex_hmac(SECRET, &req.body)).as_str())
    );
    assert!(standard_verifies(SECRET, req));
    assert!(!standard_verifies("some-other-secret-entirely", req));
}

#[actix_rt::test]
async fn a_4xx_is_not_retried() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Status(400));
    let client = client(&[50, 50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (Some(400), 1));
    assert_eq!(out.error.as_deref(), Some("non-retryable 400"));
    assert_eq!(receiver.count(), 1);
}

#[actix_rt::test]
async fn a_429_is_retried_until_success() {
    let receiver = TestReceiver::start();
    receiver.script([Reply::Status(429), Reply::Status(429)]);
    let client = client(&[50, 50, 50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(out.ok(), "{out:?}");
    assert_eq!((out.status, out.attempts), (Some(200), 3));
    assert_eq!(receiver.count(), 3);
}

#[actix_rt::test]
async fn a_persistent_503_fails_after_the_whole_schedule() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Status(503));
    let client = client(&[50, 50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts, out.gone), (Some(503), 3, false));
    assert_eq!(out.error.as_deref(), Some("HTTP 503"));
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 3);
    // Each attempt is signed at its own send time, over the same body.
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
}

#[actix_rt::test]
async fn a_refused_connection_is_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr").port()
    };
    let client = client(&[50], Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{port}/hook");
    let out = deliver(&client, &target(&url, &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (None, 2));
    assert_eq!(out.error.as_deref(), Some("connection refused"));
}

#[actix_rt::test]
async fn a_connection_reset_is_retried_and_named() {
    let receiver = TestReceiver::start();
    receiver.script([Reply::Reset, Reply::Reset]);
    let client = client(&[50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (None, 2));
    let error = out.error.unwrap_or_default();
    assert!(
        error.contains("connection") && !error.contains("Internal error"),
        "an operator-readable reason: {error}"
    );
    assert_eq!(receiver.count(), 2);
}

#[actix_rt::test]
async fn a_hanging_receiver_times_out_and_is_retried() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Hang);
    let client = client(&[50], Duration::from_millis(300));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (None, 2));
    assert_eq!(out.error.as_deref(), Some("timeout after 300ms"));
    receiver.wait_for(2, WAIT).await;
}

#[actix_rt::test]
async fn retry_after_replaces_the_scheduled_delay() {
    let receiver = TestReceiver::start();
    receiver.script([Reply::WithHeaders(
        429,
        vec![("Retry-After".into(), "1".into())],
    )]);
    let client = client(&[10], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(out.ok(), "{out:?}");
    assert_eq!(out.attempts, 2);
    let reqs = receiver.requests();
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(gap >= Duration::from_millis(900), "waited only {gap:?}");
}

#[actix_rt::test]
async fn redirects_are_not_followed() {
    let receiver = TestReceiver::start();
    let elsewhere = TestReceiver::start();
    receiver.script([Reply::WithHeaders(
        302,
        vec![("Location".into(), elsewhere.url())],
    )]);
    let client = client(&[50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (Some(302), 1));
    assert_eq!(out.error.as_deref(), Some("non-retryable 302"));
    assert_eq!(receiver.count(), 1);
    assert_eq!(elsewhere.count(), 0);
}

#[actix_rt::test]
async fn a_410_means_gone_and_stops() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Status(410));
    let client = client(&[50, 50], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[SECRET])).await;

    assert!(!out.ok());
    assert!(out.gone);
    assert_eq!((out.status, out.attempts), (Some(410), 1));
    assert_eq!(out.error.as_deref(), Some("non-retryable 410"));
    assert_eq!(receiver.count(), 1);
}

#[actix_rt::test]
async fn during_a_rotation_both_secrets_sign() {
    let (new, old) = (
        "the-new-secret-after-rotation",
        "the-old-secret-before-rotation",
    );
    let receiver = TestReceiver::start();
    let client = client(&[], Duration::from_secs(5));
    let out = deliver(&client, &target(&receiver.url(), &[new, old])).await;
    assert!(out.ok(), "{out:?}");

    let req = &receiver.requests()[0];
    assert_eq!(
        req.header("x-decnet-signature"),
        Some(
            format!(
                "sha256={},sha256={}",
                hex_hmac(new, &req.body),
                hex_hmac(old, &req.body)
            )
            .as_str()
        )
    );
    let standard = req.header("webhook-signature").unwrap_or_default();
    assert_eq!(standard.split(' ').count(), 2, "{standard}");
    assert!(standard_verifies(new, req));
    assert!(standard_verifies(old, req));
}

#[actix_rt::test]
async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
    let receiver = TestReceiver::start();
    let url = format!("http://localhost:{}/hook", receiver.port);
    let guarded = DeliveryClient::new(DeliverySettings {
        timeout: Duration::from_secs(5),
        retry_schedule: vec![Duration::from_millis(50)],
        allow_private: false,
        per_destination: PER_DESTINATION,
        splunk_ack_timeout: Duration::from_secs(300),
    });
    let out = deliver(&guarded, &target(&url, &[SECRET])).await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (None, 1));
    let error = out.error.unwrap_or_default();
    assert!(
        error.starts_with("destination refused: url host localhost resolves to"),
        "{error}"
    );
    assert!(error.contains("non-public"), "{error}");
    assert_eq!(receiver.count(), 0, "no request may reach the receiver");
}

#[actix_rt::test]
async fn stop_cuts_the_schedule_short() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Status(503));
    let client = client(&[3_600_000, 3_600_000], Duration::from_secs(5));
    let target = target(&receiver.url(), &[SECRET]);
    let (tx, stop) = watch::channel(false);
    let signal = async {
        receiver.wait_for(1, WAIT).await;
        let _ = tx.send(true);
    };
    let (out, ()) = tokio::time::timeout(
        Duration::from_secs(60),
        futures::future::join(client.deliver(&target, &event(), &stop), signal),
    )
    .await
    .expect("stop ends the hour-long retry wait");

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (Some(503), 1));
    assert_eq!(out.error.as_deref(), Some("HTTP 503"));
    assert_eq!(receiver.count(), 1);
}

#[actix_rt::test]
async fn attempt_once_never_retries() {
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Status(503));
    let client = client(&[50, 50], Duration::from_secs(5));
    let out = client
        .attempt_once(&target(&receiver.url(), &[SECRET]), &event())
        .await;

    assert!(!out.ok());
    assert_eq!((out.status, out.attempts), (Some(503), 1));
    assert_eq!(receiver.count(), 1);
}

/// A bare HTTP/1.1 server on 127.0.0.1:0 answering 200 with a `body_len`-byte body;
/// counts the connections it accepts.
async fn counting_server(body_len: usize) -> (u16, Rc<Cell<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let accepted = Rc::new(Cell::new(0));
    let count = accepted.clone();
    actix_rt::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.set(count.get() + 1);
            actix_rt::spawn(serve_connection(stream, body_len));
        }
    });
    (port, accepted)
}

async fn serve_connection(stream: tokio::net::TcpStream, body_len: usize) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n{}",
        "x".repeat(body_len)
    );
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
        let mut body = vec![0; length];
        if read.read_exact(&mut body).await.is_err()
            || write.write_all(reply.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

#[actix_rt::test]
async fn one_connection_serves_many_deliveries() {
    // A response body must be read to the end before the connection can be reused.
    let (port, accepted) = counting_server(10_000).await;
    let client = client(&[], Duration::from_secs(5));
    let target = target(&format!("http://127.0.0.1:{port}/hook"), &[SECRET]);
    for _ in 0..20 {
        let out = deliver(&client, &target).await;
        assert!(out.ok(), "{out:?}");
    }
    assert_eq!(accepted.get(), 1);
}

/// Wire vectors recorded from the original implementation.
#[test]
fn envelopes_and_signatures_match_the_original() {
    let raw = include_str!("../../vectors/envelopes.json");
    let doc: Value = serde_json::from_str(raw).expect("vectors are JSON");
    let vectors = doc["vectors"].as_array().expect("a vectors list");
    assert!(!vectors.is_empty());
    for v in vectors {
        let e = &v["event"];
        let text = |x: &Value| x.as_str().expect("a string").to_owned();
        let event = Event::new(
            text(&e["id"]),
            text(&e["topic"]),
            text(&e["ts"]),
            text(&e["type"]),
            e["payload"].clone(),
        );
        let name = &event.id;
        assert_eq!(
            std::str::from_utf8(&event.body).expect("UTF-8 body"),
            v["body"].as_str().expect("body"),
            "body of {name}"
        );
        let secrets = [Secret::new(text(&v["secret"]))];
        assert_eq!(
            signing::decnet_signature(&secrets, &event.body),
            text(&v["x_decnet_signature"]),
            "X-DECNET-Signature of {name}"
        );
        let sw = &v["standard_webhooks"];
        let webhook_id = format!("msg_{}", event.id);
        assert_eq!(webhook_id, text(&sw["webhook_id"]), "webhook-id of {name}");
        let ts = sw["webhook_timestamp"].as_u64().expect("timestamp");
        assert_eq!(
            signing::standard_signature(&secrets, &webhook_id, ts, &event.body),
            text(&sw["webhook_signature"]),
            "webhook-signature of {name}"
        );
        assert_eq!(
            text(&sw["secret"]),
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(text(&v["secret"]))
            )
        );
    }
}

#[actix_rt::test]
async fn a_hanging_receiver_does_not_hold_up_the_others() {
    let client = Rc::new(client(&[], Duration::from_secs(30)));
    let dead = TestReceiver::start();
    dead.set_default(Reply::Hang);
    // More deliveries to the hanging receiver than awc's default pool limit of 100:
    // they hold that destination's slots only, the rest of them wait their turn.
    let hanging = 150;
    for _ in 0..hanging {
        let (client, target) = (client.clone(), target(&dead.url(), &[SECRET]));
        actix_rt::spawn(async move { deliver(&client, &target).await });
    }
    dead.wait_for(PER_DESTINATION, WAIT).await;

    let healthy: Vec<TestReceiver> = (0..10).map(|_| TestReceiver::start()).collect();
    let deliveries = healthy.iter().flat_map(|rx| {
        let target = target(&rx.url(), &[SECRET]);
        let client = client.clone();
        (0..20).map(move |_| {
            let (client, target) = (client.clone(), target.clone());
            async move { deliver(&client, &target).await }
        })
    });
    for out in futures::future::join_all(deliveries).await {
        assert!(out.ok() && out.attempts == 1, "{out:?}");
    }
    assert!(healthy.iter().all(|rx| rx.count() == 20));
    assert_eq!(
        dead.count(),
        PER_DESTINATION,
        "one destination never holds more than its slots"
    );
}
