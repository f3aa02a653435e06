//! `POST /api/v1/webhooks/{uuid}/test`: one signed attempt, answered 200 whatever the
//! receiver does, recorded nowhere.

use serde_json::{json, Value};

use crate::helpers::{AppOptions, Reply, TestApp, TestReceiver};

async fn private_app() -> TestApp {
    TestApp::spawn(AppOptions::default().setting("webhook_allow_private", "true")).await
}

async fn subscribe(app: &TestApp, token: &str, url: &str) -> Value {
    app.create_webhook(
        token,
        &json!({"name": "pinged", "url": url, "topic_patterns": ["attacker.>"]}),
    )
    .await
}

#[actix_rt::test]
async fn a_ping_reaches_the_receiver_signed() {
    let app = private_app().await;
    let password = app
        .create_user("operator", decnet_webhook::auth::Role::Admin)
        .await;
    let token = app.login("operator", &password).await;
    let receiver = TestReceiver::start();
    let created = subscribe(&app, &token, &receiver.url()).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());

    let resp = app
        .post(&format!("{at}/test"), Some(&token), &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json(),
        json!({"delivered": true, "status_code": 200, "error": null})
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let event = requests[0].json();
    assert_eq!(event["topic"], json!("test.ping"));
    assert_eq!(event["type"], json!("test"));
    assert_eq!(
        event["payload"],
        json!({"message": "Synthetic test event from DECNET", "triggered_by": "operator"})
    );
    assert!(requests[0]
        .header("x-decnet-signature")
        .is_some_and(|s| s.starts_with("sha256=")));

    let after = app.get(&at, Some(&token)).await.json();
    let mut before = created.clone();
    before.as_object_mut().unwrap().remove("secret");
    // The plaintext-secret warning belongs to the answer that shows the secret.
    before["warnings"].as_array_mut().unwrap().retain(|w| {
        !w.as_str()
            .is_some_and(|w| w.starts_with("plaintext_secret:"))
    });
    assert_eq!(after, before, "the ping left the row as it was");
}

#[actix_rt::test]
async fn a_failing_receiver_is_reported_without_retries() {
    let app = private_app().await;
    let token = app.admin_token().await;
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::Status(503));
    let created = subscribe(&app, &token, &receiver.url()).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());

    let resp = app
        .post(&format!("{at}/test"), Some(&token), &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let result = resp.json();
    assert_eq!(result["delivered"], json!(false));
    assert_eq!(result["status_code"], json!(503));
    assert!(result["error"].is_string());
    assert_eq!(receiver.count(), 1, "one attempt only");

    let after = app.get(&at, Some(&token)).await.json();
    assert_eq!(after["consecutive_failures"], json!(0));
    assert_eq!(after["last_failure_at"], Value::Null);
    assert_eq!(after["last_error"], Value::Null);
    assert_eq!(after["updated_at"], created["updated_at"]);
}

#[actix_rt::test]
async fn a_closed_port_is_reported() {
    let app = private_app().await;
    let token = app.admin_token().await;
    // Bind then drop: the port is closed, nobody listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let created = subscribe(&app, &token, &format!("http://127.0.0.1:{port}/hook")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());

    let resp = app
        .post(&format!("{at}/test"), Some(&token), &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let result = resp.json();
    assert_eq!(result["delivered"], json!(false));
    assert_eq!(result["status_code"], Value::Null);
    assert!(!result["error"].as_str().unwrap_or_default().is_empty());

    let after = app.get(&at, Some(&token)).await.json();
    assert_eq!(after["consecutive_failures"], json!(0));
    assert_eq!(after["last_error"], Value::Null);
}

#[actix_rt::test]
async fn pinging_an_unknown_webhook_is_404() {
    let app = private_app().await;
    let token = app.admin_token().await;
    let resp = app
        .post(
            &format!("/api/v1/webhooks/{}/test", uuid::Uuid::new_v4()),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(resp.status, 404, "{}", resp.text);
}
