//! Input the API refuses or flags: receivers behind address translators, names with
//! invisible formatting characters, subject patterns reaching the bus's internals,
//! and URL changes beyond the create limit.

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

/// Each of these reaches a private or loopback address through a translator or relay.
const TRANSLATED: [&str; 6] = [
    // local-use NAT64 prefix
    "http://[64:ff9b:1::a00:1]/",
    // 6to4 with 127.0.0.1 and 10.0.0.1 as the embedded gateway
    "http://[2002:7f00:1::1]/",
    "http://[2002:a00:1::1]/",
    // Teredo
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    // IPv4-translated ::ffff:0:127.0.0.1
    "http://[::ffff:0:7f00:1]/",
    // the 6to4 relay anycast range
    "http://192.88.99.1/",
];

#[actix_rt::test]
async fn receivers_behind_address_translators_are_refused() {
    let app = app_without_create_limit().await;
    let token = app.admin_token().await;
    for url in TRANSLATED {
        let resp = app
            .post("/api/v1/webhooks/", Some(&token), &with("url", json!(url)))
            .await;
        assert_eq!(resp.status, 422, "{url}: {}", resp.text);
        assert!(resp.detail().starts_with("url: "), "{url}: {}", resp.text);
    }
    let created = app.create_webhook(&token, &valid_webhook("public")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    for url in TRANSLATED {
        let resp = app.patch(&at, Some(&token), &json!({ "url": url })).await;
        assert_eq!(resp.status, 422, "{url}: {}", resp.text);
    }
    // A 6to4 address whose gateway is public passes.
    let resp = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &json!({"name": "6to4", "url": "http://[2002:808:808::1]/", "topic_patterns": ["a"]}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    let list = app.get("/api/v1/webhooks/", Some(&token)).await.json();
    let urls: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, ["https://1.1.1.1/hook", "http://[2002:808:808::1]/"]);
}

#[actix_rt::test]
async fn names_with_invisible_formatting_characters_are_refused() {
    let app = app_without_create_limit().await;
    let token = app.admin_token().await;
    // The first displays as "siem-exe.png", the second as "siem".
    let spoofs = [
        "siem-\u{202E}gnp.exe",
        "siem\u{200B}",
        "\u{2066}siem\u{2069}",
    ];
    for name in spoofs {
        let resp = app
            .post(
                "/api/v1/webhooks/",
                Some(&token),
                &with("name", json!(name)),
            )
            .await;
        assert_eq!(resp.status, 422, "{name:?}: {}", resp.text);
        let detail = resp.detail();
        assert!(
            detail.starts_with("name: ") && detail.contains("U+"),
            "{name:?}: {detail}"
        );
    }
    let created = app.create_webhook(&token, &valid_webhook("siem")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    for name in spoofs {
        let resp = app.patch(&at, Some(&token), &json!({ "name": name })).await;
        assert_eq!(resp.status, 422, "{name:?}: {}", resp.text);
    }
    let list = app.get("/api/v1/webhooks/", Some(&token)).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "siem");
    // Letters of any script still pass.
    let resp = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &with("name", json!("SIEM Zürich 東京")),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
}

#[actix_rt::test]
async fn patterns_into_nats_internals_are_refused_and_wildcards_flagged() {
    let app = app_without_create_limit().await;
    let token = app.admin_token().await;
    for pattern in ["$SYS.>", "$SYS.ACCOUNT.*.CONNECT", "$JS.API.>", "_INBOX.>"] {
        let body = with("topic_patterns", json!(["attacker.>", pattern]));
        let resp = app.post("/api/v1/webhooks/", Some(&token), &body).await;
        assert_eq!(resp.status, 422, "{pattern}: {}", resp.text);
        assert!(
            resp.detail().starts_with("topic_patterns[1]: "),
            "{pattern}: {}",
            resp.text
        );
    }
    let created = app.create_webhook(&token, &valid_webhook("narrow")).await;
    assert_eq!(
        created["warnings"].as_array().unwrap().len(),
        1,
        "plaintext only"
    );
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    let resp = app
        .patch(&at, Some(&token), &json!({"topic_patterns": ["_INBOX.>"]}))
        .await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    let row = app.get(&at, Some(&token)).await.json();
    assert_eq!(row["topic_patterns"], json!(["attacker.>"]));

    // A bare `>` is allowed (a lab may want everything) but flagged, on every read.
    let wildcard = |w: &Value| {
        w["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("wildcard_pattern: "))
    };
    let everything = app
        .create_webhook(&token, &with("topic_patterns", json!([">"])))
        .await;
    assert!(wildcard(&everything), "{everything}");
    let patched = app
        .patch(&at, Some(&token), &json!({"topic_patterns": ["*.>"]}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert!(wildcard(&patched.json()), "{}", patched.text);
    assert!(wildcard(&app.get(&at, Some(&token)).await.json()));
}

#[actix_rt::test]
async fn url_changes_count_against_the_create_limit() {
    let app = TestApp::spawn(AppOptions::default().setting("webhook_create_per_minute", "3")).await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("moving")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    for url in ["https://1.1.1.2/hook", "https://1.1.1.3/hook"] {
        let resp = app.patch(&at, Some(&token), &json!({ "url": url })).await;
        assert_eq!(resp.status, 200, "{url}: {}", resp.text);
    }
    // The fourth look-up this minute: a PATCH could otherwise make the guard
    // resolve names without end.
    let resp = app
        .patch(&at, Some(&token), &json!({"url": "https://1.1.1.4/hook"}))
        .await;
    assert_eq!(resp.status, 429, "{}", resp.text);
    assert!(resp.detail().contains("URL changes"), "{}", resp.text);
    let create = app
        .post("/api/v1/webhooks/", Some(&token), &valid_webhook("another"))
        .await;
    assert_eq!(create.status, 429, "{}", create.text);
    // Changes without a URL do no look-up and stay free.
    let resp = app
        .patch(&at, Some(&token), &json!({"enabled": false}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json()["url"], "https://1.1.1.3/hook");
}
