//! Destination shapes through the API: their settings round-trip, each refusal
//! names its field, and PagerDuty's routing key is write-only and sealed.

use decnet_webhook::db::subscriptions;
use serde_json::{json, Value};

use crate::helpers::{
    fakes::{Answer, FakeService},
    AppOptions, TestApp,
};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const ROUTING_KEY: &str = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12";
const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";

fn hook(name: &str, extra: Value) -> Value {
    let mut body =
        json!({"name": name, "url": "https://1.1.1.1/hook", "topic_patterns": ["attacker.>"]});
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body
}

#[actix_rt::test]
async fn destination_settings_round_trip_and_belong_to_their_shape() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let settings = json!({"index": "honeypot", "sourcetype": "decnet:event", "indexer_ack": true});
    let created = app
        .create_webhook(
            &token,
            &hook(
                "hec",
                json!({"shape": "splunk_hec", "destination": settings}),
            ),
        )
        .await;
    assert_eq!(created["destination"], settings);
    assert_eq!(created["routing_key_set"], false);
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    assert_eq!(
        app.get(&at, Some(&token)).await.json()["destination"],
        settings
    );

    // Leaving the shape drops its settings.
    let raw = app.patch(&at, Some(&token), &json!({"shape": "raw"})).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert_eq!(raw.json()["destination"], Value::Null);

    let refusals = [
        (
            json!({"shape": "splunk_hec", "destination": {"stream": "Custom-X_CL"}}),
            "destination.stream: does not apply to shape \"splunk_hec\"",
        ),
        (
            json!({"shape": "sentinel"}),
            "destination.dcr_immutable_id: required with shape \"sentinel\"",
        ),
        (
            json!({"shape": "sentinel", "destination": {"dcr_immutable_id": "dcr-xyz", "stream": "Custom-X_CL"}}),
            "destination.dcr_immutable_id: must be \"dcr-\" and 32 hex digits",
        ),
        (
            json!({"shape": "elastic_bulk", "destination": {"index": "Decnet"}}),
            "destination.index: must be a lowercase Elasticsearch index name",
        ),
        (
            json!({"shape": "pagerduty"}),
            "routing_key: required with shape \"pagerduty\"",
        ),
        (
            json!({"shape": "pagerduty", "routing_key": "short"}),
            "routing_key: must be the 32 letters and digits",
        ),
        (
            json!({"shape": "raw", "routing_key": ROUTING_KEY}),
            "routing_key: only allowed with shape \"pagerduty\"",
        ),
        (
            json!({"shape": "teams", "batch_max": 5}),
            "batch_max: shape \"teams\" posts one object per request",
        ),
        (
            json!({"shape": "splunk_hec", "destination": {"nope": 1}}),
            "destination.nope: unknown field `nope`",
        ),
    ];
    for (i, (extra, detail)) in refusals.into_iter().enumerate() {
        let resp = app
            .post(
                "/api/v1/webhooks",
                Some(&token),
                &hook(&format!("bad{i}"), extra),
            )
            .await;
        assert!(
            resp.status == 422 || resp.status == 400,
            "{i}: {} {}",
            resp.status,
            resp.text
        );
        assert!(resp.detail().starts_with(detail), "{i}: {}", resp.detail());
    }
    let sentinel = app
        .create_webhook(
            &token,
            &hook("az", json!({"shape": "sentinel", "batch_max": 10, "destination": {"dcr_immutable_id": DCR, "stream": "Custom-DecnetEvents_CL"}})),
        )
        .await;
    assert_eq!(sentinel["destination"]["stream"], "Custom-DecnetEvents_CL");
}

#[actix_rt::test]
async fn the_routing_key_is_write_only_and_sealed() {
    let app = TestApp::spawn(AppOptions::default().setting("secret_key", KEY)).await;
    let token = app.admin_token().await;
    let created = app
        .create_webhook(
            &token,
            &hook("pd", json!({"shape": "pagerduty", "routing_key": ROUTING_KEY, "destination": {"min_severity": "error"}})),
        )
        .await;
    assert_eq!(created["routing_key_set"], true);
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    let at = format!("/api/v1/webhooks/{uuid}");
    for text in [
        created.to_string(),
        app.get(&at, Some(&token)).await.text,
        app.get("/api/v1/webhooks", Some(&token)).await.text,
    ] {
        assert!(!text.contains(ROUTING_KEY), "the key is never shown");
    }
    let stored = subscriptions::get(&app.db, &uuid).await.unwrap().unwrap();
    let sealed = stored.destination_secret.expect("stored");
    assert!(sealed.starts_with("enc:v2:") && !sealed.contains(ROUTING_KEY));

    // A PATCH without the key keeps it; leaving the shape drops it.
    let kept = app
        .patch(
            &at,
            Some(&token),
            &json!({"destination": {"min_severity": "critical"}}),
        )
        .await;
    assert_eq!(kept.json()["routing_key_set"], true, "{}", kept.text);
    let left = app.patch(&at, Some(&token), &json!({"shape": "raw"})).await;
    assert_eq!(left.json()["routing_key_set"], false, "{}", left.text);
    let row = subscriptions::get(&app.db, &uuid).await.unwrap().unwrap();
    assert_eq!(row.destination_secret, None);
}

#[actix_rt::test]
async fn a_test_ping_is_shaped_and_judged_as_the_destination() {
    let app = TestApp::spawn(AppOptions::default().setting("webhook_allow_private", "true")).await;
    let token = app.admin_token().await;
    let fake = FakeService::start(|seen| {
        let v: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        if v["event"]["topic"] == "test.ping" && v["sourcetype"] == "decnet:test.ping" {
            Answer::json(200, json!({"text": "Success", "code": 0}))
        } else {
            Answer::json(400, json!({"text": "Invalid data format", "code": 6}))
        }
    });
    let busy =
        FakeService::start(|_| Answer::json(200, json!({"text": "Server is busy", "code": 9})));
    for (name, fake, delivered, error) in [
        ("hec", &fake, true, Value::Null),
        (
            "hec-busy",
            &busy,
            false,
            json!("splunk code 9 (HTTP 200): Server is busy"),
        ),
    ] {
        let created = app
            .create_webhook(
                &token,
                &json!({"name": name, "url": fake.url("/services/collector/event"), "topic_patterns": ["attacker.>"], "shape": "splunk_hec"}),
            )
            .await;
        let resp = app
            .post(
                &format!(
                    "/api/v1/webhooks/{}/test",
                    created["uuid"].as_str().unwrap()
                ),
                Some(&token),
                &json!({}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert_eq!(resp.json()["delivered"], delivered, "{name}: {}", resp.text);
        assert_eq!(resp.json()["error"], error, "{name}");
    }
}
