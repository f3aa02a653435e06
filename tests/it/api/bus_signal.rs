//! `system.webhook.subscriptions_changed` after every effective change, and a bus
//! that is down never fails a request.

use async_nats::Subscriber;
use futures::StreamExt;
use serde_json::json;

use super::valid_webhook;
use crate::helpers::{AppOptions, TestApp, WAIT};

const SUBJECT: &str = "system.webhook.subscriptions_changed";

pub(super) async fn next_body(sub: &mut Subscriber) -> Vec<u8> {
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a signal within the deadline")
        .expect("subscription open");
    msg.payload.to_vec()
}

#[actix_rt::test]
async fn changes_signal_the_workers_and_no_ops_do_not() {
    let app = TestApp::spawn(AppOptions::with_nats()).await;
    let nats = app.nats.as_ref().unwrap();
    let client = nats.client().await;
    let mut sub = client.subscribe(SUBJECT).await.unwrap();
    client.flush().await.unwrap();
    let token = app.admin_token().await;

    let created = app.create_webhook(&token, &valid_webhook("sig")).await;
    assert_eq!(next_body(&mut sub).await, b"{}");
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());

    let changed = app
        .patch(&at, Some(&token), &json!({"enabled": false}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(next_body(&mut sub).await, b"{}");

    let noop = app
        .patch(&at, Some(&token), &json!({"enabled": false, "name": "sig"}))
        .await;
    assert_eq!(noop.status, 200, "{}", noop.text);
    // Refused requests signal nothing either.
    let refused = app
        .patch(&at, Some(&token), &json!({"topic_patterns": []}))
        .await;
    assert_eq!(refused.status, 400);

    // The delete signals; had the no-op signalled, that signal would come first
    // (one connection keeps its order) and the delete's would be left over below.
    let deleted = app.delete(&at, Some(&token)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(next_body(&mut sub).await, b"{}");

    assert_no_more_signals(&client, &mut sub).await;
}

/// Everything the app published so far reached the server before its last signal was
/// received, so it precedes a sentinel published now: nothing may come between.
pub(super) async fn assert_no_more_signals(client: &async_nats::Client, sub: &mut Subscriber) {
    client.publish(SUBJECT, "sentinel".into()).await.unwrap();
    client.flush().await.unwrap();
    let mut extra = Vec::new();
    loop {
        let body = next_body(sub).await;
        if body == b"sentinel" {
            break;
        }
        extra.push(String::from_utf8_lossy(&body).into_owned());
    }
    assert!(extra.is_empty(), "unexpected signals: {extra:?}");
}

#[actix_rt::test]
async fn a_bus_that_is_down_never_fails_a_request() {
    let mut app = TestApp::spawn(AppOptions::with_nats()).await;
    let token = app.admin_token().await;
    app.nats.as_mut().unwrap().stop();

    let created = app.create_webhook(&token, &valid_webhook("offline")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    let patched = app
        .patch(&at, Some(&token), &json!({"name": "still-offline"}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let deleted = app.delete(&at, Some(&token)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
}

#[actix_rt::test]
async fn without_a_bus_the_api_still_works() {
    let app = TestApp::spawn(AppOptions::default().setting("bus_enabled", "false")).await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("no-bus")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    assert_eq!(app.delete(&at, Some(&token)).await.status, 200);
}
