//! `GET /api/v1/webhooks/{uuid}/deliveries`: the delivery log, newest first.

use decnet_webhook::db::delivery_log;
use serde_json::json;

use super::{
    dead_letters::{at, attempt, event_ids},
    valid_webhook,
};
use crate::helpers::TestApp;

#[actix_rt::test]
async fn the_log_is_paged_newest_first_and_filtered_by_outcome() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let uuid = app.create_webhook(&token, &valid_webhook("logged")).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.create_webhook(&token, &valid_webhook("quiet")).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = [(0, true), (1, false), (2, true), (3, false), (4, true)]
        .into_iter()
        .map(|(i, ok)| attempt(&uuid, &format!("a{i}"), ok, at(i)))
        .chain([attempt(&other, "elsewhere", false, at(9))])
        .collect::<Vec<_>>();
    delivery_log::insert(&app.db, &rows).await.unwrap();
    let base = format!("/api/v1/webhooks/{uuid}/deliveries");

    let all = app.get(&base, Some(&token)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let all = all.json();
    assert_eq!(event_ids(&all), ["a4", "a3", "a2", "a1", "a0"]);
    assert_eq!(
        (&all["total"], &all["limit"], &all["offset"]),
        (&json!(5), &json!(50), &json!(0))
    );

    let failed = app
        .get(&format!("{base}?outcome=failed"), Some(&token))
        .await
        .json();
    assert_eq!(event_ids(&failed), ["a3", "a1"]);
    assert_eq!(failed["total"], json!(2));
    assert_eq!(
        failed["items"][0],
        json!({
            "event_id": "a3",
            "attempt": 1,
            "attempted_at": "2026-04-24T10:00:03+00:00",
            "status_code": 500,
            "latency_ms": 12,
            "ok": false,
            "error": "HTTP 500",
        })
    );

    let ok = app
        .get(&format!("{base}?outcome=ok&limit=2&offset=1"), Some(&token))
        .await
        .json();
    assert_eq!(event_ids(&ok), ["a2", "a0"]);
    assert_eq!(
        (&ok["total"], &ok["limit"], &ok["offset"]),
        (&json!(3), &json!(2), &json!(1))
    );
    assert_eq!(ok["items"][0]["error"], json!(null));
}
