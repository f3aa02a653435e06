//! Rate limits the worker could not run with are refused on save, naming the field.

use serde_json::json;

use super::valid_webhook;
use crate::helpers::TestApp;

#[actix_rt::test]
async fn a_rate_limit_out_of_bounds_is_422_naming_the_field() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("rated")).await;
    let path = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    // 1e-30 was accepted, then panicked the subscription at its second event.
    for (i, rate) in [1e-30, 0.000_999, 10_000.5, 0.0, -1.0]
        .into_iter()
        .enumerate()
    {
        let mut body = valid_webhook(&format!("rate-{i}"));
        body["rate_limit_per_sec"] = json!(rate);
        let resp = app.post("/api/v1/webhooks/", Some(&token), &body).await;
        assert_eq!(resp.status, 422, "{rate}: {}", resp.text);
        assert_eq!(
            resp.detail(),
            "rate_limit_per_sec: must be 0.001–10000 (deliveries per second)",
            "{rate}"
        );
        let resp = app
            .patch(&path, Some(&token), &json!({"rate_limit_per_sec": rate}))
            .await;
        assert_eq!(resp.status, 422, "{rate}: {}", resp.text);
        assert!(resp.detail().starts_with("rate_limit_per_sec: "), "{rate}");
    }
    for rate in [0.001, 10_000.0] {
        let resp = app
            .patch(&path, Some(&token), &json!({"rate_limit_per_sec": rate}))
            .await;
        assert_eq!(resp.status, 200, "{rate}: {}", resp.text);
        assert_eq!(resp.json()["rate_limit_per_sec"], json!(rate));
    }
}
