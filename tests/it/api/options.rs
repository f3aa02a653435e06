//! Per-subscription delivery options through the API: defaults, round
//! trips, each refusal, and the reload signal.

use decnet_webhook::db::subscriptions;
use serde_json::{json, Value};

use super::{
    bus_signal::{assert_no_more_signals, next_body},
    valid_webhook,
};
use crate::helpers::{AppOptions, TestApp};

const SIGNAL: &str = "system.webhook.subscriptions_changed";

fn path(created: &Value) -> String {
    format!(
        "/api/v1/webhooks/{}",
        created["uuid"].as_str().expect("uuid")
    )
}

fn with(name: &str, extra: Value) -> Value {
    let mut body = valid_webhook(name);
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    body
}

/// The option fields of a response.
fn options(row: &Value) -> Value {
    json!({
        "ordered": row["ordered"],
        "batch_max": row["batch_max"],
        "batch_linger_ms": row["batch_linger_ms"],
        "rate_limit_per_sec": row["rate_limit_per_sec"],
        "shape": row["shape"],
        "template": row["template"],
    })
}

fn off() -> Value {
    json!({
        "ordered": false, "batch_max": null, "batch_linger_ms": null,
        "rate_limit_per_sec": null, "shape": "raw", "template": null,
    })
}

const TEMPLATE: &str = "{\n  \"id\": {{ id }},\n  \"ip\": {{ payload.attacker_ip }}\n}";

#[actix_rt::test]
async fn options_are_off_unless_given() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("plain")).await;
    assert_eq!(options(&created), off());
    let got = app.get(&path(&created), Some(&token)).await;
    assert_eq!(options(&got.json()), off());

    let row = subscriptions::get(&app.db, created["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .expect("stored");
    assert!(!row.ordered);
    assert_eq!(
        (row.batch_max, row.batch_linger_ms, row.rate_limit_per_sec),
        (None, None, None)
    );
    assert_eq!((row.shape.as_str(), row.template), ("raw", None));
}

#[actix_rt::test]
async fn options_round_trip_through_create_patch_and_get() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app
        .create_webhook(
            &token,
            &with(
                "opts",
                json!({
                    "ordered": true, "batch_max": 20, "batch_linger_ms": 250,
                    "rate_limit_per_sec": 12.5, "shape": "template", "template": TEMPLATE,
                }),
            ),
        )
        .await;
    let want = json!({
        "ordered": true, "batch_max": 20, "batch_linger_ms": 250,
        "rate_limit_per_sec": 12.5, "shape": "template", "template": TEMPLATE,
    });
    assert_eq!(options(&created), want);
    let at = path(&created);
    assert_eq!(options(&app.get(&at, Some(&token)).await.json()), want);

    // Absent fields stay; null clears; leaving the template shape drops the template,
    // and turning batching off drops the linger.
    let patched = app
        .patch(&at, Some(&token), &json!({"rate_limit_per_sec": null}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["rate_limit_per_sec"], Value::Null);
    assert_eq!(patched.json()["template"], json!(TEMPLATE));
    assert_eq!(patched.json()["batch_linger_ms"], json!(250));

    let patched = app
        .patch(
            &at,
            Some(&token),
            &json!({"shape": "thehive", "batch_max": null, "ordered": false}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let want = json!({
        "ordered": false, "batch_max": null, "batch_linger_ms": null,
        "rate_limit_per_sec": null, "shape": "thehive", "template": null,
    });
    assert_eq!(options(&patched.json()), want);
    let listed = app.get("/api/v1/webhooks/", Some(&token)).await.json();
    assert_eq!(options(&listed[0]), want);

    let row = subscriptions::get(&app.db, created["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(row.shape, "thehive");
    assert_eq!(
        (row.template, row.batch_max, row.batch_linger_ms),
        (None, None, None)
    );
    assert!(!row.ordered);

    // A template can be set on an existing subscription, and a fractional rate kept.
    let patched = app
        .patch(
            &at,
            Some(&token),
            &json!({"shape": "template", "template": TEMPLATE, "rate_limit_per_sec": 0.25}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["template"], json!(TEMPLATE));
    assert_eq!(patched.json()["rate_limit_per_sec"], json!(0.25));
}

#[actix_rt::test]
async fn invalid_options_are_422_naming_the_field() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let cases = [
        (json!({"batch_max": 0}), "batch_max: "),
        (json!({"batch_max": 51}), "batch_max: "),
        (json!({"batch_max": "ten"}), "batch_max: "),
        (
            json!({"batch_max": 5, "batch_linger_ms": 0}),
            "batch_linger_ms: ",
        ),
        (
            json!({"batch_max": 5, "batch_linger_ms": 5001}),
            "batch_linger_ms: ",
        ),
        (
            json!({"batch_linger_ms": 100}),
            "batch_linger_ms: only applies with batch_max above 1",
        ),
        (
            json!({"batch_max": 1, "batch_linger_ms": 100}),
            "batch_linger_ms: ",
        ),
        (json!({"rate_limit_per_sec": 0}), "rate_limit_per_sec: "),
        (json!({"rate_limit_per_sec": -3}), "rate_limit_per_sec: "),
        (json!({"rate_limit_per_sec": 10001}), "rate_limit_per_sec: "),
        (
            json!({"rate_limit_per_sec": "fast"}),
            "rate_limit_per_sec: ",
        ),
        (json!({"ordered": "yes"}), "ordered: "),
        (json!({"shape": "xml"}), "shape: unknown variant `xml`"),
        (
            json!({"shape": "template"}),
            "template: required with shape \"template\"",
        ),
        (
            json!({"template": "{{ payload }}"}),
            "template: only allowed with shape \"template\"",
        ),
        (
            json!({"shape": "slack", "template": "{{ payload }}"}),
            "template: only allowed",
        ),
        (
            json!({"shape": "slack", "batch_max": 10}),
            "batch_max: shape \"slack\" posts one object per request",
        ),
        (
            json!({"shape": "thehive", "batch_max": 2}),
            "batch_max: shape \"thehive\" posts one object per request",
        ),
        (
            json!({"shape": "template", "template": "x".repeat(16 * 1024 + 1)}),
            "template: template is 16385 bytes",
        ),
    ];
    for (i, (extra, want)) in cases.iter().enumerate() {
        let resp = app
            .post(
                "/api/v1/webhooks/",
                Some(&token),
                &with(&format!("bad-{i}"), extra.clone()),
            )
            .await;
        assert_eq!(resp.status, 422, "{extra}: {}", resp.text);
        assert!(
            resp.detail().starts_with(want),
            "{extra}: {}",
            resp.detail()
        );
    }

    // The same rules on PATCH, against what the subscription would become.
    let created = app
        .create_webhook(&token, &with("good", json!({"shape": "slack"})))
        .await;
    let at = path(&created);
    for (extra, want) in [
        (json!({"batch_max": 3}), "batch_max: shape \"slack\""),
        (json!({"shape": "template"}), "template: required"),
        (
            json!({"batch_linger_ms": 10}),
            "batch_linger_ms: only applies",
        ),
        (json!({"rate_limit_per_sec": 0.0}), "rate_limit_per_sec: "),
        (
            json!({"template": null, "shape": "bogus"}),
            "shape: unknown variant",
        ),
    ] {
        let resp = app.patch(&at, Some(&token), &extra).await;
        assert_eq!(resp.status, 422, "{extra}: {}", resp.text);
        assert!(
            resp.detail().starts_with(want),
            "{extra}: {}",
            resp.detail()
        );
    }
    assert_eq!(
        options(&app.get(&at, Some(&token)).await.json())["shape"],
        json!("slack"),
        "refused patches change nothing"
    );
    let list = app.get("/api/v1/webhooks/", Some(&token)).await.json();
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "refused creates store nothing"
    );
}

#[actix_rt::test]
async fn a_broken_template_is_refused_with_its_line() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let broken = "{\n  \"id\": {{ id }},\n  \"x\": {% if payload %}\n}";
    let resp = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &with("broken", json!({"shape": "template", "template": broken})),
        )
        .await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    let detail = resp.detail();
    assert!(
        detail.starts_with("template: template syntax error on line 3: "),
        "{detail}"
    );

    let created = app
        .create_webhook(
            &token,
            &with("fixed", json!({"shape": "template", "template": TEMPLATE})),
        )
        .await;
    let resp = app
        .patch(
            &path(&created),
            Some(&token),
            &json!({"template": "{{ id }\n"}),
        )
        .await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    assert!(
        resp.detail()
            .starts_with("template: template syntax error on line 1: "),
        "{}",
        resp.detail()
    );
    let got = app.get(&path(&created), Some(&token)).await.json();
    assert_eq!(got["template"], json!(TEMPLATE));
}

#[actix_rt::test]
async fn an_option_change_signals_the_workers_and_a_no_op_does_not() {
    let app = TestApp::spawn(AppOptions::with_nats()).await;
    let client = app.nats.as_ref().unwrap().client().await;
    let mut sub = client.subscribe(SIGNAL).await.unwrap();
    client.flush().await.unwrap();
    let token = app.admin_token().await;

    let created = app
        .create_webhook(&token, &with("sig-opts", json!({"batch_max": 5})))
        .await;
    assert_eq!(next_body(&mut sub).await, b"{}");
    let at = path(&created);

    let changed = app
        .patch(&at, Some(&token), &json!({"ordered": true}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json()["ordered"], json!(true));
    assert_eq!(next_body(&mut sub).await, b"{}");

    // Each of these leaves every column as it is.
    for noop in [
        json!({"ordered": true}),
        json!({"batch_max": 5, "shape": "raw"}),
        json!({"rate_limit_per_sec": null, "template": null}),
        json!({}),
    ] {
        let resp = app.patch(&at, Some(&token), &noop).await;
        assert_eq!(resp.status, 200, "{noop}: {}", resp.text);
        assert_eq!(
            resp.json()["updated_at"],
            changed.json()["updated_at"],
            "{noop}"
        );
    }

    let changed = app
        .patch(&at, Some(&token), &json!({"rate_limit_per_sec": 3}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(next_body(&mut sub).await, b"{}");

    // A stray signal from a no-op would come before the sentinel.
    assert_no_more_signals(&client, &mut sub).await;
}

#[actix_rt::test]
async fn the_openapi_document_describes_the_options() {
    let app = TestApp::spawn_default().await;
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    let schemas = &doc["components"]["schemas"];
    let fields = [
        "ordered",
        "batch_max",
        "batch_linger_ms",
        "rate_limit_per_sec",
        "shape",
        "template",
    ];
    for schema in ["Webhook", "WebhookCreate", "WebhookUpdate"] {
        let props = &schemas[schema]["properties"];
        for field in fields {
            assert!(
                props.get(field).is_some(),
                "{schema}.{field} is not documented"
            );
        }
    }
    assert_eq!(
        schemas["ShapeName"]["enum"],
        json!([
            "raw",
            "slack",
            "thehive",
            "template",
            "splunk_hec",
            "elastic_bulk",
            "sentinel",
            "pagerduty",
            "teams",
            "discord"
        ])
    );
    let create = &schemas["WebhookCreate"]["properties"];
    assert_eq!(create["batch_max"]["maximum"], json!(50));
    assert_eq!(create["batch_linger_ms"]["maximum"], json!(5000));
}
