//! `GET /api/v1/webhooks/{uuid}/dead-letters`, query validation of the history
//! routes, and what a delete takes with it.

use chrono::{DateTime, Duration, TimeZone, Utc};
use decnet_webhook::db::{
    dead_letters::{self, NewDeadLetter},
    delivery_log::{self, LogRow},
};
use reqwest::Method;
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};

use super::valid_webhook;
use crate::helpers::TestApp;

/// Whole seconds, so both databases keep them exactly.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 24, 10, 0, 0).unwrap() + Duration::seconds(seconds)
}

/// An envelope body, as the worker stores it.
pub fn envelope(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","payload":{{"n":"{id}"}},"topic":"attacker.observed","ts":"2026-04-24T10:00:00+00:00","type":"t","v":1}}"#)
        .into_bytes()
}

pub fn dead_letter(
    subscription: &str,
    event_id: &str,
    reason: &str,
    body: Vec<u8>,
    created_at: DateTime<Utc>,
) -> NewDeadLetter {
    NewDeadLetter {
        uuid: uuid::Uuid::new_v4().to_string(),
        subscription_uuid: subscription.to_owned(),
        event_id: event_id.to_owned(),
        topic: "attacker.observed".into(),
        body,
        reason: reason.to_owned(),
        error: Some("HTTP 503".into()),
        status: Some(503),
        attempts: 3,
        created_at,
    }
}

pub async fn insert(db: &DatabaseConnection, rows: Vec<NewDeadLetter>) {
    dead_letters::insert_many(
        db,
        rows.into_iter().map(NewDeadLetter::into_active).collect(),
    )
    .await
    .expect("insert dead letters");
}

pub fn attempt(
    subscription: &str,
    event_id: &str,
    ok: bool,
    attempted_at: DateTime<Utc>,
) -> LogRow {
    LogRow {
        subscription: subscription.into(),
        event_id: event_id.to_owned(),
        attempt: 1,
        at: attempted_at,
        status: Some(if ok { 200 } else { 500 }),
        latency_ms: 12,
        error: (!ok).then(|| "HTTP 500".to_owned()),
    }
}

pub fn event_ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["event_id"].as_str().expect("event_id"))
        .collect()
}

async fn app_with_webhook() -> (TestApp, String, String) {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("kept")).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    (app, token, uuid)
}

#[actix_rt::test]
async fn dead_letters_are_paged_newest_first_with_their_total() {
    let (app, token, uuid) = app_with_webhook().await;
    let other = app.create_webhook(&token, &valid_webhook("other")).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Inserted out of order: the listing orders, not the insert.
    let rows = [3, 0, 4, 1, 2]
        .into_iter()
        .map(|i| {
            dead_letter(
                &uuid,
                &format!("e{i}"),
                "retries_exhausted",
                envelope(&format!("e{i}")),
                at(i),
            )
        })
        .chain([dead_letter(
            &other,
            "elsewhere",
            "non_retryable",
            envelope("x"),
            at(9),
        )])
        .collect();
    insert(&app.db, rows).await;
    let at_path = format!("/api/v1/webhooks/{uuid}/dead-letters");

    let all = app.get(&at_path, Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let all = all.json();
    assert_eq!(event_ids(&all), ["e4", "e3", "e2", "e1", "e0"]);
    assert_eq!(
        (&all["total"], &all["limit"], &all["offset"]),
        (&json!(5), &json!(50), &json!(0))
    );

    let page = app
        .get(&format!("{at_path}?limit=2&offset=1"), Some(&token))
        .await
        .json();
    assert_eq!(event_ids(&page), ["e3", "e2"]);
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(5), &json!(2), &json!(1))
    );

    let past_the_end = app
        .get(&format!("{at_path}?offset=5"), Some(&token))
        .await
        .json();
    assert_eq!(past_the_end["items"], json!([]));
    assert_eq!(past_the_end["total"], json!(5));

    let item = &page["items"][0];
    let mut keys: Vec<&String> = item.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempts",
            "body",
            "body_base64",
            "created_at",
            "error",
            "event_id",
            "reason",
            "status_code",
            "topic",
            "uuid"
        ]
    );
    assert_eq!(item["body"].as_str().unwrap().as_bytes(), envelope("e3"));
    assert_eq!(item["body_base64"], Value::Null);
    assert_eq!(item["reason"], json!("retries_exhausted"));
    assert_eq!(item["status_code"], json!(503));
    assert_eq!(item["attempts"], json!(3));
    assert_eq!(item["error"], json!("HTTP 503"));
    assert_eq!(item["created_at"], json!("2026-04-24T10:00:03+00:00"));
}

#[actix_rt::test]
async fn bodies_that_are_not_utf8_come_as_base64() {
    let (app, token, uuid) = app_with_webhook().await;
    let raw = b"\xff\xfe not json \x00".to_vec();
    insert(
        &app.db,
        vec![dead_letter(&uuid, "raw", "undecodable", raw.clone(), at(0))],
    )
    .await;
    let page = app
        .get(
            &format!("/api/v1/webhooks/{uuid}/dead-letters"),
            Some(&token),
        )
        .await
        .json();
    let item = &page["items"][0];
    assert_eq!(item["reason"], json!("undecodable"));
    assert_eq!(item["body"], Value::Null);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(item["body_base64"].as_str().expect("base64 body"))
        .unwrap();
    assert_eq!(decoded, raw);
}

#[actix_rt::test]
async fn history_routes_of_an_unknown_webhook_are_404() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let unknown = uuid::Uuid::new_v4();
    for (method, path) in [
        (
            Method::GET,
            format!("/api/v1/webhooks/{unknown}/dead-letters"),
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{unknown}/deliveries"),
        ),
        (Method::POST, format!("/api/v1/webhooks/{unknown}/replay")),
        (
            Method::GET,
            "/api/v1/webhooks/not-a-uuid/dead-letters".to_owned(),
        ),
    ] {
        let resp = app.send(method.clone(), &path, Some(&token), None).await;
        assert_eq!(resp.status, 404, "{method} {path}: {}", resp.text);
        assert_eq!(resp.detail(), "Not found");
    }
}

#[actix_rt::test]
async fn bad_query_parameters_are_422_naming_them() {
    let (app, token, uuid) = app_with_webhook().await;
    let base = format!("/api/v1/webhooks/{uuid}");
    for (method, query, field) in [
        (Method::GET, "dead-letters?limit=0", "limit"),
        (Method::GET, "dead-letters?limit=501", "limit"),
        (Method::GET, "dead-letters?limit=ten", "limit"),
        (Method::GET, "dead-letters?offset=-1", "offset"),
        (Method::GET, "dead-letters?offset=1&offset=2", "offset"),
        (Method::GET, "dead-letters?outcome=ok", "outcome"),
        (Method::GET, "deliveries?outcome=maybe", "outcome"),
        (Method::GET, "deliveries?limit=", "limit"),
        (Method::GET, "deliveries?bogus=1", "bogus"),
        (Method::POST, "replay?since=yesterday", "since"),
        (Method::POST, "replay?limit=0", "limit"),
        (Method::POST, "replay?until=x", "until"),
    ] {
        let resp = app
            .send(
                method.clone(),
                &format!("{base}/{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(resp.status, 422, "{method} {query}: {}", resp.text);
        assert!(
            resp.detail().starts_with(&format!("{field}: ")),
            "{method} {query}: {}",
            resp.detail()
        );
    }
    for query in [
        "dead-letters?limit=500&offset=0",
        "dead-letters?offset=9223372036854775807",
        "deliveries?offset=9223372036854775807&outcome=failed",
    ] {
        let fine = app.get(&format!("{base}/{query}"), Some(&token)).await;
        assert_eq!(fine.status, 200, "{query}: {}", fine.text);
        assert_eq!(fine.json()["items"], json!([]));
    }
    let far = app
        .post(
            &format!("{base}/replay?since=9999-12-31T23:59:59Z"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(far.status, 200, "{}", far.text);
}

#[actix_rt::test]
async fn deleting_a_webhook_deletes_its_dead_letters_and_delivery_log() {
    let (app, token, uuid) = app_with_webhook().await;
    let kept = app.create_webhook(&token, &valid_webhook("kept-too")).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    for sub in [&uuid, &kept] {
        insert(
            &app.db,
            vec![dead_letter(sub, "d", "non_retryable", envelope("d"), at(0))],
        )
        .await;
        delivery_log::insert(&app.db, &[attempt(sub, "d", false, at(0))])
            .await
            .unwrap();
    }

    let resp = app
        .delete(&format!("/api/v1/webhooks/{uuid}"), Some(&token))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);

    let (_, dead) = dead_letters::list(&app.db, &uuid, 10, 0).await.unwrap();
    let (_, log) = delivery_log::list(&app.db, &uuid, None, 10, 0)
        .await
        .unwrap();
    assert_eq!((dead, log), (0, 0), "the deleted webhook's history is gone");
    let (_, dead) = dead_letters::list(&app.db, &kept, 10, 0).await.unwrap();
    let (_, log) = delivery_log::list(&app.db, &kept, None, 10, 0)
        .await
        .unwrap();
    assert_eq!((dead, log), (1, 1), "other webhooks keep theirs");
}
