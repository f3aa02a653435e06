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
