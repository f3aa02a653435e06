//! `POST /api/v1/webhooks/{uuid}/replay`: dead letters re-delivered in order, signed
//! with the subscription's secret, exactly as stored; the first failure stops it.

use decnet_webhook::{
    config::Settings,
    db::{dead_letters, delivery_log},
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use super::dead_letters::{at, dead_letter, envelope, event_ids, insert};
use crate::helpers::{
    app::ApiResponse, eventually, worker::WorkerHandle, AppOptions, Recorded, Reply, TestApp,
    TestReceiver, WAIT,
};

const SECRET: &str = "replay-secret-0123456789abcdef";

struct Setup {
    app: TestApp,
    token: String,
    uuid: String,
    receiver: TestReceiver,
    created: Value,
}

async fn setup(options: AppOptions) -> Setup {
    let app = TestApp::spawn(options.setting("webhook_allow_private", "true")).await;
    let token = app.admin_token().await;
    let receiver = TestReceiver::start();
    let created = app
        .create_webhook(
            &token,
            &json!({
                "name": "replayed",
                "url": receiver.url(),
                "secret": SECRET,
                "topic_patterns": ["attacker.>"],
            }),
        )
        .await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    Setup {
        app,
        token,
        uuid,
        receiver,
        created,
    }
}

impl Setup {
    async fn replay(&self, query: &str) -> ApiResponse {
        let resp = self
            .app
            .post(
                &format!("/api/v1/webhooks/{}/replay{query}", self.uuid),
                Some(&self.token),
                &json!({}),
            )
            .await;
        assert_eq!(resp.status, 200, "replay{query}: {}", resp.text);
        resp
    }

    async fn stored(&self) -> Vec<String> {
        let (rows, _) = dead_letters::list(&self.app.db, &self.uuid, 1000, 0)
            .await
            .unwrap();
        rows.into_iter().rev().map(|r| r.event_id).collect()
    }

    async fn insert_envelopes(&self, ids: &[(&str, i64)]) {
        let rows = ids
            .iter()
            .map(|(id, second)| {
                dead_letter(
                    &self.uuid,
                    id,
                    "retries_exhausted",
                    envelope(id),
                    at(*second),
                )
            })
            .collect();
        insert(&self.app.db, rows).await;
    }
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn assert_signed_envelope(request: &Recorded, id: &str) {
    assert_eq!(
        request.body.as_ref(),
        envelope(id),
        "exact stored bytes of {id}"
    );
    assert_eq!(
        request.header("x-decnet-signature"),
        Some(signature(&request.body).as_str()),
        "{id} is signed with the subscription's secret"
    );
    assert_eq!(request.header("x-decnet-event-id"), Some(id));
    assert_eq!(
        request.header("x-decnet-event-topic"),
        Some("attacker.observed")
    );
    assert_eq!(
        request.header("webhook-id"),
        Some(format!("msg_{id}").as_str())
    );
}

fn delivered_ids(receiver: &TestReceiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| r.header("x-decnet-event-id").unwrap_or_default().to_owned())
        .collect()
}

#[actix_rt::test]
async fn replay_delivers_the_stored_bytes_signed_in_order_and_removes_them() {
    let s = setup(AppOptions::default()).await;
    // Inserted out of order: replay goes by dead-letter time.
    s.insert_envelopes(&[("r2", 2), ("r0", 0), ("r1", 1)]).await;

    let resp = s.replay("").await;
    assert_eq!(
        resp.json(),
        json!({"replayed": 3, "failed": null, "skipped": 0, "remaining": 0})
    );
    let requests = s.receiver.requests();
    assert_eq!(requests.len(), 3);
    for (request, id) in requests.iter().zip(["r0", "r1", "r2"]) {
        assert_signed_envelope(request, id);
    }
    assert!(!resp.text.contains(SECRET));
    assert!(s.stored().await.is_empty(), "delivered entries are removed");

    let (log, total) = delivery_log::list(&s.app.db, &s.uuid, Some(true), 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 3, "replay attempts are in the delivery log");
    assert!(log.iter().all(|a| a.status == Some(200) && a.attempt == 1));

    // The circuit-breaker columns are untouched.
    let row = s
        .app
        .get(&format!("/api/v1/webhooks/{}", s.uuid), Some(&s.token))
        .await
        .json();
    let mut before = s.created.clone();
    before.as_object_mut().unwrap().remove("secret");
    // The plaintext-secret warning belongs to the answer that shows the secret.
    before["warnings"].as_array_mut().unwrap().retain(|w| {
        !w.as_str()
            .is_some_and(|w| w.starts_with("plaintext_secret:"))
    });
    assert_eq!(row, before);
}

#[actix_rt::test]
async fn replay_stops_at_the_first_failure_and_keeps_the_rest() {
    let s = setup(AppOptions::default()).await;
    s.insert_envelopes(&[("f0", 0), ("f1", 1), ("f2", 2), ("f3", 3)])
        .await;
    s.receiver.script([Reply::Status(200), Reply::Status(500)]);

    let resp = s.replay("").await.json();
    assert_eq!(
        resp,
        json!({
            "replayed": 1,
            "failed": {"event_id": "f1", "error": "HTTP 500", "status_code": 500},
            "skipped": 0,
            "remaining": 3,
        })
    );
    assert_eq!(
        delivered_ids(&s.receiver),
        ["f0", "f1"],
        "one attempt, no retries"
    );
    assert_eq!(s.stored().await, ["f1", "f2", "f3"]);

    // The next replay picks up where this one stopped.
    let resp = s.replay("").await.json();
    assert_eq!(resp["replayed"], json!(3));
    assert_eq!(resp["remaining"], json!(0));
    assert_eq!(delivered_ids(&s.receiver), ["f0", "f1", "f1", "f2", "f3"]);
    for (request, id) in s.receiver.requests()[2..].iter().zip(["f1", "f2", "f3"]) {
        assert_signed_envelope(request, id);
    }
}

#[actix_rt::test]
async fn since_limits_the_replay_to_newer_entries() {
    let s = setup(AppOptions::default()).await;
    s.insert_envelopes(&[("s0", 0), ("s1", 1), ("s2", 2), ("s3", 3)])
        .await;

    let resp = s.replay("?since=2026-04-24T10:00:02Z").await.json();
    assert_eq!(
        resp,
        json!({"replayed": 2, "failed": null, "skipped": 0, "remaining": 0})
    );
    assert_eq!(delivered_ids(&s.receiver), ["s2", "s3"]);
    assert_eq!(s.stored().await, ["s0", "s1"]);

    // An offset other than UTC means the same instant.
    let resp = s.replay("?since=2026-04-24T12:00:01%2B02:00").await.json();
    assert_eq!(resp["replayed"], json!(1));
    assert_eq!(s.stored().await, ["s0"]);
}

#[actix_rt::test]
async fn undecodable_entries_are_skipped_and_kept() {
    let s = setup(AppOptions::default()).await;
    insert(
        &s.app.db,
        vec![
            dead_letter(
                &s.uuid,
                "raw",
                "undecodable",
                b"\xff{not json".to_vec(),
                at(0),
            ),
            dead_letter(&s.uuid, "u1", "queue_overflow", envelope("u1"), at(1)),
        ],
    )
    .await;

    let resp = s.replay("").await.json();
    assert_eq!(
        resp,
        json!({"replayed": 1, "failed": null, "skipped": 1, "remaining": 0})
    );
    assert_eq!(delivered_ids(&s.receiver), ["u1"]);
    assert_eq!(s.stored().await, ["raw"]);
}

#[actix_rt::test]
async fn one_replay_at_a_time_per_webhook() {
    let s = setup(AppOptions::default().setting("webhook_timeout_secs", "1")).await;
    s.insert_envelopes(&[("h0", 0), ("h1", 1)]).await;
    s.receiver.script([Reply::Hang]);

    let request = s
        .app
        .client
        .post(format!(
            "{}/api/v1/webhooks/{}/replay",
            s.app.address, s.uuid
        ))
        .bearer_auth(&s.token)
        .send();
    let first = actix_rt::spawn(async move {
        let resp = request.await.expect("first replay answers");
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    s.receiver.wait_for(1, WAIT).await;

    let second = s
        .app
        .post(
            &format!("/api/v1/webhooks/{}/replay", s.uuid),
            Some(&s.token),
            &json!({}),
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.text);

    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["replayed"], json!(0));
    assert_eq!(body["failed"]["event_id"], json!("h0"));
    assert_eq!(body["failed"]["status_code"], Value::Null);
    assert_eq!(body["remaining"], json!(2));
    assert_eq!(s.stored().await, ["h0", "h1"]);
}

/// The whole path: the worker dead-letters a refused delivery, a replay re-sends the
/// very bytes it sent.
#[actix_rt::test]
async fn a_dead_letter_written_by_the_worker_is_replayed_as_sent() {
    let s = setup(AppOptions::with_nats()).await;
    let nats = s.app.nats.as_ref().expect("nats");
    let settings = Settings::from_pairs([
        (
            "database_url",
            s.app.settings.database_url.expose().to_owned(),
        ),
        ("nats_url", nats.url()),
        ("webhook_allow_private", "true".into()),
        ("webhook_retry_schedule", String::new()),
        ("webhook_bus_reconnect_secs", "1".into()),
    ])
    .expect("worker settings");
    let worker = WorkerHandle::spawn(settings).await;
    eventually(WAIT, "the subscription to run", || async {
        worker
            .status()
            .await
            .running
            .contains_key(&s.uuid)
            .then_some(())
    })
    .await;

    s.receiver.script([Reply::Status(400)]);
    let client = nats.client().await;
    client
        .publish(
            "attacker.observed",
            br#"{"id":"live-1","payload":{"ip":"203.0.113.7"}}"#.to_vec().into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let dead = eventually(WAIT, "the dead letter", || async {
        let (rows, _) = dead_letters::list(&s.app.db, &s.uuid, 10, 0).await.ok()?;
        rows.into_iter().next()
    })
    .await;
    assert_eq!(dead.reason, "non_retryable");

    let listed = s
        .app
        .get(
            &format!("/api/v1/webhooks/{}/dead-letters", s.uuid),
            Some(&s.token),
        )
        .await
        .json();
    assert_eq!(event_ids(&listed), ["live-1"]);

    let resp = s.replay("").await.json();
    assert_eq!(resp["replayed"], json!(1), "{resp}");
    let requests = s.receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].body, requests[0].body, "the bytes first sent");
    assert_eq!(
        requests[1].header("x-decnet-signature"),
        Some(signature(&requests[1].body).as_str())
    );
    assert_eq!(requests[1].header("x-decnet-event-id"), Some("live-1"));
    assert!(s.stored().await.is_empty());
    worker.stop().await.expect("the worker stops cleanly");
}

#[actix_rt::test]
async fn replay_takes_one_entry_by_id_or_a_limited_number() {
    let s = setup(AppOptions::default()).await;
    s.insert_envelopes(&[("o0", 0), ("o1", 1), ("o2", 2), ("o3", 3)])
        .await;
    let (rows, _) = dead_letters::list(&s.app.db, &s.uuid, 10, 0).await.unwrap();
    let picked = rows
        .iter()
        .find(|r| r.event_id == "o2")
        .unwrap()
        .uuid
        .clone();

    // One picked entry, whatever its place in the order.
    let resp = s.replay(&format!("?id={picked}")).await;
    assert_eq!(
        resp.json(),
        json!({"replayed": 1, "failed": null, "skipped": 0, "remaining": 3})
    );
    assert_eq!(delivered_ids(&s.receiver), ["o2"]);
    assert_signed_envelope(&s.receiver.requests()[0], "o2");
    assert_eq!(s.stored().await, ["o0", "o1", "o3"]);

    // A page at a time, oldest first: how the web page shows progress.
    let resp = s.replay("?limit=2").await;
    assert_eq!(resp.json()["replayed"], 2);
    assert_eq!(resp.json()["remaining"], 1);
    assert_eq!(delivered_ids(&s.receiver), ["o2", "o0", "o1"]);

    // Another subscription's entry, or one already replayed, is not found.
    let gone = s
        .app
        .post(
            &format!("/api/v1/webhooks/{}/replay?id={picked}", s.uuid),
            Some(&s.token),
            &json!({}),
        )
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    for bad in ["limit=0", "limit=1001", "limit=x"] {
        let resp = s
            .app
            .post(
                &format!("/api/v1/webhooks/{}/replay?{bad}", s.uuid),
                Some(&s.token),
                &json!({}),
            )
            .await;
        assert_eq!(resp.status, 422, "{bad}");
        assert!(resp.detail().starts_with("limit: "), "{}", resp.detail());
    }
}
