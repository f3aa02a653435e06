//! Create, read, update, delete, and what each answers.

use chrono::{DateTime, Utc};
use decnet_webhook::{api::webhooks::dto::PLAINTEXT_SECRET_WARNING, db::subscriptions};
use serde_json::{json, Value};

use super::valid_webhook;
use crate::helpers::{AppOptions, TestApp};

fn path(uuid: &Value) -> String {
    format!("/api/v1/webhooks/{}", uuid.as_str().expect("uuid"))
}

#[actix_rt::test]
async fn create_without_patterns_is_400() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    for body in [
        json!({"name": "a", "url": "https://1.1.1.1/hook"}),
        json!({"name": "a", "url": "https://1.1.1.1/hook", "simple_events": [], "topic_patterns": []}),
        json!({"name": "a", "url": "https://1.1.1.1/hook", "simple_events": null}),
    ] {
        let resp = app.post("/api/v1/webhooks/", Some(&token), &body).await;
        assert_eq!(resp.status, 400, "{}", resp.text);
        assert_eq!(
            resp.detail(),
            "Provide at least one simple_events entry or topic_patterns pattern."
        );
    }
    let list = app.get("/api/v1/webhooks/", Some(&token)).await;
    assert_eq!(list.json(), json!([]));
}

#[actix_rt::test]
async fn simple_events_expand_and_the_secret_is_shown_once() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app
        .create_webhook(
            &token,
            &json!({
                "name": "siem",
                "url": "https://1.1.1.1/hook",
                "simple_events": ["DeckyStatus", "AttackerDetail"],
                "topic_patterns": ["attacker.>", "custom.x", "custom.x"],
            }),
        )
        .await;
    assert_eq!(
        created["topic_patterns"],
        json!(["decky.*.state", "decky.*.traffic", "attacker.>", "custom.x"])
    );
    let secret = created["secret"].as_str().expect("secret on create");
    assert!(secret.len() >= 16, "{secret}");
    assert_eq!(created["enabled"], json!(true));
    assert_eq!(created["consecutive_failures"], json!(0));
    // No DECNET_SECRET_KEY here: the answer says the secret is kept in plaintext.
    assert_eq!(created["warnings"], json!([PLAINTEXT_SECRET_WARNING]));

    let one = app.get(&path(&created["uuid"]), Some(&token)).await;
    assert_eq!(one.status, 200);
    let list = app.get("/api/v1/webhooks/", Some(&token)).await;
    assert_eq!(list.status, 200);
    let listed = list.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    for (what, body, row) in [
        ("get", &one.text, one.json()),
        ("list", &list.text, listed[0].clone()),
    ] {
        let obj = row.as_object().expect("object");
        assert!(!obj.contains_key("secret"), "{what} has a secret key");
        assert!(!body.contains(secret), "{what} leaks the secret value");
        assert_eq!(row["name"], json!("siem"));
        assert_eq!(row["topic_patterns"], created["topic_patterns"]);
    }
}

#[actix_rt::test]
async fn a_given_secret_is_kept_and_generated_ones_differ() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let mut body = valid_webhook("given");
    body["secret"] = json!("0123456789abcdef-given");
    let created = app.create_webhook(&token, &body).await;
    assert_eq!(created["secret"], json!("0123456789abcdef-given"));
    let a = app.create_webhook(&token, &valid_webhook("gen-a")).await;
    let b = app.create_webhook(&token, &valid_webhook("gen-b")).await;
    assert_ne!(a["secret"], b["secret"]);
    assert!(a["secret"].as_str().unwrap().len() >= 43);
}

#[actix_rt::test]
async fn list_is_ordered_by_creation_and_timestamps_are_utc() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let names = ["zeta", "alpha", "mid"];
    for name in names {
        app.create_webhook(&token, &valid_webhook(name)).await;
    }
    // Without the trailing slash too.
    let list = app.get("/api/v1/webhooks", Some(&token)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let listed: Vec<Value> = serde_json::from_str(&list.text).unwrap();
    let got: Vec<&str> = listed.iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(got, names);
    for w in &listed {
        for key in ["created_at", "updated_at"] {
            let ts = w[key].as_str().expect("timestamp string");
            let parsed = DateTime::parse_from_rfc3339(ts).expect("ISO-8601");
            assert_eq!(parsed.offset().local_minus_utc(), 0, "{ts} is not UTC");
        }
        assert_eq!(w["last_success_at"], Value::Null);
        assert_eq!(w["auto_disabled_at"], Value::Null);
    }
}

#[actix_rt::test]
async fn duplicate_names_conflict_on_create_and_rename() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    app.create_webhook(&token, &valid_webhook("taken")).await;
    let other = app.create_webhook(&token, &valid_webhook("other")).await;

    let again = app
        .post("/api/v1/webhooks", Some(&token), &valid_webhook("taken"))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(again.detail().contains("taken"));

    let rename = app
        .patch(
            &path(&other["uuid"]),
            Some(&token),
            &json!({"name": "taken"}),
        )
        .await;
    assert_eq!(rename.status, 409, "{}", rename.text);
    let unchanged = app.get(&path(&other["uuid"]), Some(&token)).await;
    assert_eq!(unchanged.json()["name"], json!("other"));

    // Renaming to its own name is no conflict.
    let same = app
        .patch(
            &path(&other["uuid"]),
            Some(&token),
            &json!({"name": "other"}),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.text);
}

#[actix_rt::test]
async fn patch_replaces_patterns_and_refuses_to_clear_them() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("p")).await;
    let at = path(&created["uuid"]);

    let replaced = app
        .patch(
            &at,
            Some(&token),
            &json!({"simple_events": ["SystemStatus"], "topic_patterns": ["decky.d1.state"]}),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(
        replaced.json()["topic_patterns"],
        json!(["system.>", "decky.d1.state"])
    );

    for body in [
        json!({"topic_patterns": []}),
        json!({"simple_events": [], "topic_patterns": []}),
    ] {
        let cleared = app.patch(&at, Some(&token), &body).await;
        assert_eq!(cleared.status, 400, "{}", cleared.text);
        assert_eq!(
            cleared.detail(),
            "Cannot clear all patterns; disable the webhook instead."
        );
    }
    let now = app.get(&at, Some(&token)).await.json();
    assert_eq!(now["topic_patterns"], json!(["system.>", "decky.d1.state"]));
}

#[actix_rt::test]
async fn patch_writes_only_what_changed() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("w")).await;
    let at = path(&created["uuid"]);

    let noop = app
        .patch(
            &at,
            Some(&token),
            &json!({"name": "w", "topic_patterns": ["attacker.>"], "enabled": true}),
        )
        .await;
    assert_eq!(noop.status, 200, "{}", noop.text);
    assert_eq!(noop.json()["updated_at"], created["updated_at"]);

    let paused = app
        .patch(&at, Some(&token), &json!({"enabled": false}))
        .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let paused = paused.json();
    assert_eq!(paused["enabled"], json!(false));
    assert_eq!(paused["auto_disabled_at"], Value::Null);
    assert_eq!(paused["name"], json!("w"));
    assert_eq!(paused["url"], created["url"]);
    assert_eq!(paused["created_at"], created["created_at"]);
    let updated: DateTime<Utc> = paused["updated_at"].as_str().unwrap().parse().unwrap();
    let before: DateTime<Utc> = created["updated_at"].as_str().unwrap().parse().unwrap();
    assert!(updated >= before);

    // A new secret is accepted and still never shown.
    let rotated = app
        .patch(
            &at,
            Some(&token),
            &json!({"secret": "a-brand-new-secret-value"}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert!(!rotated.text.contains("a-brand-new-secret-value"));
    let row = subscriptions::get(&app.db, created["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.secret, "a-brand-new-secret-value");
}

#[actix_rt::test]
async fn delete_then_delete_again_is_404() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("gone")).await;
    let at = path(&created["uuid"]);
    let first = app.delete(&at, Some(&token)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json(), json!({"message": "Webhook deleted"}));
    let second = app.delete(&at, Some(&token)).await;
    assert_eq!(second.status, 404, "{}", second.text);
    assert!(!second.detail().is_empty());
    assert_eq!(app.get(&at, Some(&token)).await.status, 404);
    assert_eq!(
        app.patch(&at, Some(&token), &json!({"enabled": true}))
            .await
            .status,
        404
    );
    // Not a UUID at all: no such subscription either.
    assert_eq!(
        app.get("/api/v1/webhooks/not-a-uuid", Some(&token))
            .await
            .status,
        404
    );
}

#[actix_rt::test]
async fn http_urls_carry_a_warning_and_https_urls_none() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let mut body = valid_webhook("plain");
    body["url"] = json!("http://1.1.1.1/hook");
    let plain = app.create_webhook(&token, &body).await;
    let warnings = plain["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2);
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .starts_with("insecure_url: URL uses http://."));
    assert_eq!(warnings[1], json!(PLAINTEXT_SECRET_WARNING));
    let listed = app.get("/api/v1/webhooks/", Some(&token)).await.json();
    assert_eq!(listed[0]["warnings"], json!([warnings[0]]));

    let secure = app.create_webhook(&token, &valid_webhook("tls")).await;
    assert_eq!(secure["warnings"], json!([PLAINTEXT_SECRET_WARNING]));

    // Switching the URL switches the warning.
    let now_tls = app
        .patch(
            &path(&plain["uuid"]),
            Some(&token),
            &json!({"url": "https://1.1.1.1/hook"}),
        )
        .await;
    assert_eq!(now_tls.json()["warnings"], json!([]));
}

#[actix_rt::test]
async fn re_enabling_a_tripped_webhook_clears_the_trip() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("tripped")).await;
    let uuid = created["uuid"].as_str().unwrap();
    let now = Utc::now();
    for _ in 0..3 {
        subscriptions::record_webhook_failure(&app.db, uuid, now, "HTTP 503")
            .await
            .unwrap();
    }
    subscriptions::trip_webhook_circuit(&app.db, uuid, now)
        .await
        .unwrap();

    let tripped = app.get(&path(&created["uuid"]), Some(&token)).await.json();
    assert_eq!(tripped["enabled"], json!(false));
    assert_ne!(tripped["auto_disabled_at"], Value::Null);
    assert_eq!(tripped["consecutive_failures"], json!(3));
    assert_eq!(tripped["last_error"], json!("HTTP 503"));

    let cleared = app
        .patch(
            &path(&created["uuid"]),
            Some(&token),
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    let cleared = cleared.json();
    assert_eq!(cleared["enabled"], json!(true));
    assert_eq!(cleared["auto_disabled_at"], Value::Null);
    assert_eq!(cleared["consecutive_failures"], json!(0));
    assert_eq!(cleared["last_error"], Value::Null);
    // The failure time is history and stays.
    assert_ne!(cleared["last_failure_at"], Value::Null);

    let row = subscriptions::get(&app.db, uuid).await.unwrap().unwrap();
    assert!(row.enabled);
    assert_eq!(row.auto_disabled_at, None);
    assert_eq!(row.consecutive_failures, 0);
    assert_eq!(row.last_error, None);
}

#[actix_rt::test]
async fn too_many_creates_per_minute_is_429_per_user() {
    let app = TestApp::spawn(AppOptions::default().setting("webhook_create_per_minute", "2")).await;
    let token = app.admin_token().await;
    app.create_webhook(&token, &valid_webhook("one")).await;
    app.create_webhook(&token, &valid_webhook("two")).await;
    let third = app
        .post("/api/v1/webhooks/", Some(&token), &valid_webhook("three"))
        .await;
    assert_eq!(third.status, 429, "{}", third.text);
    assert!(!third.detail().is_empty());
    // Another admin has a budget of their own.
    let other = app.admin_token().await;
    app.create_webhook(&other, &valid_webhook("three")).await;
    // The limit is on creates only.
    assert_eq!(app.get("/api/v1/webhooks/", Some(&token)).await.status, 200);
}

#[actix_rt::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let missing = app.get("/api/v1/nothing-here", Some(&token)).await;
    assert_eq!(missing.status, 404);
    assert!(!missing.detail().is_empty());
    let wrong_method = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/webhooks/",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(wrong_method.status, 405);
    assert!(!wrong_method.detail().is_empty());
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
}

#[actix_rt::test]
async fn concurrent_creates_of_one_name_conflict_instead_of_failing() {
    let app = TestApp::spawn(AppOptions::default().setting("webhook_create_per_minute", "0")).await;
    let token = app.admin_token().await;
    let body = valid_webhook("raced");
    let attempts = (0..8).map(|_| app.post("/api/v1/webhooks/", Some(&token), &body));
    let mut statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
}
