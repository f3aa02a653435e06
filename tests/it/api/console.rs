//! `/api/v1/console`: what the page reads, for every signed-in user and read-only;
//! `GET /api/v1/webhooks/presets`; and the first-run answer of the login page.

use decnet_webhook::{auth::Role, db::delivery_log};
use reqwest::Method;
use serde_json::json;

use super::dead_letters::{at, attempt, dead_letter, envelope, insert};
use crate::helpers::TestApp;

#[actix_rt::test]
async fn viewers_read_the_console_routes_without_urls_paths_or_templates() {
    let app = TestApp::spawn_default().await;
    let admin = app.admin_token().await;
    let viewer = app.viewer_token().await;
    let created = app
        .create_webhook(
            &admin,
            &json!({"name": "chat", "url": "https://1.1.1.1/services/T0/B0/SECRETTOKEN",
                    "topic_patterns": ["attacker.>"], "shape": "template",
                    "template": "{\"text\": {{ topic }}, \"key\": \"embedded-key\"}"}),
        )
        .await;
    let uuid = created["uuid"].as_str().unwrap();
    delivery_log::insert(
        &app.db,
        &[
            attempt(uuid, "a1", true, at(1)),
            attempt(uuid, "a2", false, at(2)),
        ],
    )
    .await
    .unwrap();
    insert(
        &app.db,
        vec![dead_letter(
            uuid,
            "e1",
            "retries_exhausted",
            envelope("e1"),
            at(3),
        )],
    )
    .await;

    let list = app.get("/api/v1/console/webhooks", Some(&viewer)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(!list.text.contains("SECRETTOKEN"), "{}", list.text);
    assert!(!list.text.contains("embedded-key"), "{}", list.text);
    assert_eq!(list.json()[0]["url"], "https://1.1.1.1/…");
    assert!(list.json()[0]["template"].is_null());
    assert_eq!(list.json()[0]["name"], "chat");
    let one = app
        .get(&format!("/api/v1/console/webhooks/{uuid}"), Some(&viewer))
        .await;
    assert_eq!(one.json()["url"], "https://1.1.1.1/…");
    // An admin reading the same route sees everything.
    let full = app
        .get(&format!("/api/v1/console/webhooks/{uuid}"), Some(&admin))
        .await;
    assert_eq!(
        full.json()["url"],
        "https://1.1.1.1/services/T0/B0/SECRETTOKEN"
    );
    assert!(full.json()["template"]
        .as_str()
        .is_some_and(|t| t.contains("embedded-key")));

    let log = app
        .get(
            &format!("/api/v1/console/webhooks/{uuid}/deliveries?outcome=failed"),
            Some(&viewer),
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    assert_eq!(log.json()["total"], 1);
    let dead = app
        .get(
            &format!("/api/v1/console/webhooks/{uuid}/dead-letters"),
            Some(&viewer),
        )
        .await;
    assert_eq!(dead.json()["items"][0]["event_id"], "e1");
    let stats = app
        .get(
            &format!("/api/v1/console/webhooks/{uuid}/stats?window=1h&step=5m"),
            Some(&viewer),
        )
        .await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.json()["buckets"].as_array().map(Vec::len), Some(12));
    let ledger = app
        .get(
            &format!("/api/v1/console/webhooks/{uuid}/ledger"),
            Some(&viewer),
        )
        .await;
    assert_eq!(ledger.status, 200, "{}", ledger.text);
    let admins = app
        .get(&format!("/api/v1/webhooks/{uuid}/ledger"), Some(&admin))
        .await;
    assert_eq!(ledger.json(), admins.json(), "the same ledger for both");
    assert_eq!(ledger.json()["uuid"], uuid);
    let all = app
        .get("/api/v1/console/stats?window=5m&step=1m", Some(&viewer))
        .await;
    assert_eq!(all.status, 200, "{}", all.text);
    let bad = app
        .get("/api/v1/console/stats?window=5m&step=2m", Some(&viewer))
        .await;
    assert_eq!(bad.status, 422);

    // Read-only: nothing but GET, and nothing without a token.
    for path in [
        "/api/v1/console/webhooks".to_owned(),
        format!("/api/v1/console/webhooks/{uuid}"),
        format!("/api/v1/console/webhooks/{uuid}/stats"),
        format!("/api/v1/console/webhooks/{uuid}/deliveries"),
        format!("/api/v1/console/webhooks/{uuid}/dead-letters"),
        format!("/api/v1/console/webhooks/{uuid}/ledger"),
        "/api/v1/console/stats".to_owned(),
    ] {
        let anonymous = app.get(&path, None).await;
        assert_eq!(anonymous.status, 401, "{path}");
        for method in [Method::POST, Method::PATCH, Method::DELETE] {
            let resp = app
                .send(method.clone(), &path, Some(&admin), Some(&json!({})))
                .await;
            assert_eq!(resp.status, 405, "{method} {path}");
        }
    }
    // The admin routes still refuse the viewer.
    let refused = app
        .get(
            &format!("/api/v1/webhooks/{uuid}/dead-letters"),
            Some(&viewer),
        )
        .await;
    assert_eq!(refused.status, 403);
}

#[actix_rt::test]
async fn presets_and_option_defaults_come_from_the_api() {
    let app = TestApp::spawn_default().await;
    let admin = app.admin_token().await;
    let resp = app.get("/api/v1/webhooks/presets", Some(&admin)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let p = resp.json();
    assert_eq!(p["simple_events"][0]["name"], "AttackerDetail");
    assert_eq!(p["simple_events"][0]["patterns"], json!(["attacker.>"]));
    assert_eq!(
        p["simple_events"][1]["patterns"],
        json!(["decky.*.state", "decky.*.traffic"])
    );
    assert_eq!(p["simple_events"][2]["label"], "System status");
    let shapes: Vec<&str> = p["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        shapes,
        [
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
        ]
    );
    assert_eq!(
        p["option_defaults"],
        json!({"ordered": false, "batch_max": null, "batch_linger_ms": null,
               "rate_limit_per_sec": null, "shape": "raw", "template": null,
               "filter": null, "destination": null})
    );
    assert_eq!(p["option_limits"]["batch_max"], json!([1, 50]));
    // A subscription created with nothing but the required fields has those defaults.
    let created = app
        .create_webhook(&admin, &super::valid_webhook("defaults"))
        .await;
    for (key, value) in p["option_defaults"].as_object().unwrap() {
        assert_eq!(&created[key], value, "{key}");
    }
    // The static name is not taken for a subscription's uuid.
    assert_eq!(
        app.delete("/api/v1/webhooks/presets", Some(&admin))
            .await
            .status,
        405
    );
    let viewer = app.viewer_token().await;
    assert_eq!(
        app.get("/api/v1/webhooks/presets", Some(&viewer))
            .await
            .status,
        403
    );
}

#[actix_rt::test]
async fn the_login_page_learns_only_whether_no_user_exists_yet() {
    let app = TestApp::spawn_default().await;
    let first = app.get("/api/v1/auth/first-run", None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json(), json!({"no_users": true}));
    app.create_user("first-admin", Role::Admin).await;
    let after = app.get("/api/v1/auth/first-run", None).await;
    assert_eq!(after.json(), json!({"no_users": false}));
}
