//! Every invalid body is refused with a detail naming the field; the URL guard
//! refuses non-public destinations.

use reqwest::Method;
use serde_json::{json, Value};

use super::valid_webhook;
use crate::helpers::{AppOptions, TestApp};

async fn app_without_create_limit() -> TestApp {
    TestApp::spawn(AppOptions::default().setting("webhook_create_per_minute", "0")).await
}

fn with(field: &str, value: Value) -> Value {
    let mut body = valid_webhook("v");
    body[field] = value;
    body
}

#[actix_rt::test]
async fn invalid_fields_are_422_naming_the_field() {
    let app = app_without_create_limit().await;
    let token = app.admin_token().await;
    let too_many: Vec<String> = (0..33).map(|i| format!("p.{i}")).collect();
    let cases = [
        (
            "bad pattern grammar",
            with("topic_patterns", json!(["attacker..x"])),
            "topic_patterns[0]",
        ),
        (
            "'>' not last",
            with("topic_patterns", json!(["ok.x", "a.>.b"])),
            "topic_patterns[1]",
        ),
        (
            "whitespace in pattern",
            with("topic_patterns", json!(["a b"])),
            "topic_patterns[0]",
        ),
        (
            "too many patterns",
            with("topic_patterns", json!(too_many)),
            "topic_patterns",
        ),
        ("too-long name", with("name", json!("n".repeat(65))), "name"),
        ("empty name", with("name", json!("")), "name"),
        (
            "short secret",
            with("secret", json!("x".repeat(15))),
            "secret",
        ),
        (
            "long secret",
            with("secret", json!("x".repeat(257))),
            "secret",
        ),
        (
            "bad scheme",
            with("url", json!("ftp://1.1.1.1/hook")),
            "url",
        ),
        ("not a URL", with("url", json!("no url at all")), "url"),
        (
            "URL too long",
            with(
                "url",
                json!(format!("https://1.1.1.1/{}", "x".repeat(2048))),
            ),
            "url",
        ),
        ("unknown field", with("bogus", json!(1)), "bogus"),
        ("wrong type", with("name", json!(5)), "name"),
        (
            "wrong type in list",
            with("topic_patterns", json!(["a", 3])),
            "topic_patterns[1]",
        ),
        (
            "unknown simple event",
            with("simple_events", json!(["Nope"])),
            "simple_events[0]",
        ),
        (
            "enabled not a bool",
            with("enabled", json!("yes")),
            "enabled",
        ),
        (
            "missing url",
            json!({"name": "v", "topic_patterns": ["a"]}),
            "url",
        ),
    ];
    for (what, body, field) in cases {
        let resp = app.post("/api/v1/webhooks/", Some(&token), &body).await;
        assert_eq!(resp.status, 422, "{what}: {}", resp.text);
        let detail = resp.detail();
        assert!(
            detail.contains(field),
            "{what}: {detail:?} does not name {field}"
        );
    }
    let list = app.get("/api/v1/webhooks/", Some(&token)).await.json();
    assert_eq!(list, json!([]), "nothing invalid was stored");
}

#[actix_rt::test]
async fn invalid_patches_are_422_naming_the_field() {
    let app = app_without_create_limit().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("target")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    let cases = [
        (json!({"topic_patterns": ["a.b*"]}), "topic_patterns[0]"),
        (json!({"name": ""}), "name"),
        (json!({"secret": "short"}), "secret"),
        (json!({"url": "gopher://1.1.1.1/"}), "url"),
        (json!({"url": "http://10.0.0.1/"}), "url"),
        (json!({"enabled": 1}), "enabled"),
        (json!({"bogus": true}), "bogus"),
    ];
    for (body, field) in cases {
        let resp = app.patch(&at, Some(&token), &body).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.text);
        assert!(resp.detail().contains(field), "{body}: {}", resp.text);
    }
    let row = app.get(&at, Some(&token)).await.json();
    assert_eq!(
        row["updated_at"], created["updated_at"],
        "nothing was written"
    );
}

#[actix_rt::test]
async fn malformed_json_is_422() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    for raw in [r#"{"name": "x""#, "", "not json", "[1, 2]"] {
        let resp = app
            .send_raw(
                Method::POST,
                "/api/v1/webhooks/",
                Some(&token),
                raw.to_owned(),
            )
            .await;
        assert_eq!(resp.status, 422, "{raw:?}: {}", resp.text);
        assert!(
            resp.detail().starts_with("body: "),
            "{raw:?}: {}",
            resp.text
        );
    }
    let login = app
        .send_raw(Method::POST, "/api/v1/auth/login", None, "{nope")
        .await;
    assert_eq!(login.status, 422, "{}", login.text);
    assert!(login.detail().contains("JSON"));
}

#[actix_rt::test]
async fn bodies_over_64_kib_are_413() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let mut body = valid_webhook("big");
    body["padding"] = json!("x".repeat(65 * 1024));
    let raw = serde_json::to_vec(&body).unwrap();
    for (method, path) in [
        (Method::POST, "/api/v1/webhooks/".to_owned()),
        (Method::POST, "/api/v1/auth/login".to_owned()),
    ] {
        let resp = app.send_raw(method, &path, Some(&token), raw.clone()).await;
        assert_eq!(resp.status, 413, "{path}: {}", resp.text);
        assert!(!resp.detail().is_empty());
    }
}

#[actix_rt::test]
async fn non_public_destinations_are_refused() {
    let app = app_without_create_limit().await;
    let token = app.admin_token().await;
    for url in [
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::1]:8080/",
        "http://localhost/",
        "http://127.0.0.1:9/",
        "http://10.0.0.1/",
        "https://192.168.1.10/hook",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "https://no-such-host.invalid/hook",
    ] {
        let resp = app
            .post("/api/v1/webhooks/", Some(&token), &with("url", json!(url)))
            .await;
        assert_eq!(resp.status, 422, "{url}: {}", resp.text);
        assert!(resp.detail().starts_with("url: "), "{url}: {}", resp.text);
    }
    let public = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &with("url", json!("https://1.1.1.1/hook")),
        )
        .await;
    assert_eq!(public.status, 201, "{}", public.text);
}

#[actix_rt::test]
async fn private_destinations_pass_when_allowed() {
    let app = TestApp::spawn(AppOptions::default().setting("webhook_allow_private", "true")).await;
    let token = app.admin_token().await;
    let resp = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &with("url", json!("http://127.0.0.1:9/hook")),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    // Even then the host must resolve.
    let nowhere = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &json!({"name": "n", "url": "https://no-such-host.invalid/", "topic_patterns": ["a"]}),
        )
        .await;
    assert_eq!(nowhere.status, 422, "{}", nowhere.text);
}
