//! `GET /api/v1/webhooks/{uuid}/stats` and `/api/v1/webhooks/stats`: counts and
//! latency percentiles per interval, grouped by the database from real rows.

use chrono::{DateTime, Duration, DurationRound, Utc};
use decnet_webhook::db::delivery_log::{self, LogRow};
use serde_json::Value;

use super::{
    dead_letters::{dead_letter, envelope, insert},
    valid_webhook,
};
use crate::helpers::TestApp;

fn attempt(sub: &str, ok: bool, latency_ms: i32, at: DateTime<Utc>) -> LogRow {
    LogRow {
        subscription: sub.into(),
        event_id: uuid::Uuid::new_v4().to_string(),
        attempt: 1,
        at,
        status: Some(if ok { 200 } else { 503 }),
        latency_ms,
        error: (!ok).then(|| "HTTP 503".to_owned()),
    }
}

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("ISO-8601")
        .with_timezone(&Utc)
}

/// The bucket of `stats` that holds `at`.
fn bucket(stats: &Value, at: DateTime<Utc>) -> &Value {
    let from = ts(&stats["from"]);
    let step = stats["step_secs"].as_i64().expect("step_secs");
    let index = (at - from).num_seconds() / step;
    &stats["buckets"][usize::try_from(index).expect("inside the window")]
}

#[actix_rt::test]
async fn stats_count_attempts_and_dead_letters_per_interval_with_percentiles() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let sub = app.create_webhook(&token, &valid_webhook("counted")).await;
    let other = app.create_webhook(&token, &valid_webhook("other")).await;
    let (sub, other) = (
        sub["uuid"].as_str().unwrap(),
        other["uuid"].as_str().unwrap(),
    );

    // Hours well inside a one-day window, at whole seconds (both databases keep them).
    let hour = Utc::now().duration_trunc(Duration::hours(1)).unwrap();
    let busy = hour - Duration::hours(5) + Duration::minutes(20);
    let quiet = hour - Duration::hours(3) + Duration::minutes(7);
    let mut rows = Vec::new();
    // Busy hour: 98 fast successes, one slower, one failure timing out.
    for i in 0..98 {
        rows.push(attempt(sub, true, 4, busy + Duration::seconds(i)));
    }
    rows.push(attempt(sub, true, 120, busy + Duration::seconds(100)));
    rows.push(attempt(sub, false, 10_000, busy + Duration::seconds(101)));
    // Quiet hour: three successes, 100–150 ms.
    for (i, ms) in [100, 125, 150].into_iter().enumerate() {
        rows.push(attempt(sub, true, ms, quiet + Duration::seconds(i as i64)));
    }
    // Outside the window, and another subscription's: not counted for `sub`.
    rows.push(attempt(sub, true, 1, hour - Duration::days(2)));
    rows.push(attempt(other, false, 7, busy));
    delivery_log::insert(&app.db, &rows).await.unwrap();
    insert(
        &app.db,
        vec![
            dead_letter(sub, "e1", "retries_exhausted", envelope("e1"), busy),
            dead_letter(
                sub,
                "e2",
                "non_retryable",
                envelope("e2"),
                busy + Duration::seconds(5),
            ),
            dead_letter(other, "e3", "retries_exhausted", envelope("e3"), quiet),
        ],
    )
    .await;

    let resp = app
        .get(
            &format!("/api/v1/webhooks/{sub}/stats?window=1d&step=1h"),
            Some(&token),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let stats = resp.json();
    assert_eq!(stats["subscription"], sub);
    assert_eq!(stats["window"], "1d");
    assert_eq!(
        (stats["window_secs"].as_i64(), stats["step_secs"].as_i64()),
        (Some(86_400), Some(3600))
    );
    let buckets = stats["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 24);
    assert_eq!(ts(&stats["to"]) - ts(&stats["from"]), Duration::days(1));
    // Buckets are consecutive steps, oldest first.
    for pair in buckets.windows(2) {
        assert_eq!(
            ts(&pair[1]["start"]) - ts(&pair[0]["start"]),
            Duration::hours(1)
        );
    }

    let b = bucket(&stats, busy);
    assert_eq!(b["delivered"], 99, "{b}");
    assert_eq!(b["failed"], 1);
    assert_eq!(b["dead_lettered"], 2);
    assert_eq!(b["p50_ms"], 4.0);
    // The 99th of 100 attempts is the 120 ms one, alone in its class.
    assert_eq!(b["p99_ms"], 120.0);
    let q = bucket(&stats, quiet);
    assert_eq!(
        (q["delivered"].as_u64(), q["failed"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(q["p50_ms"], 125.0);
    assert_eq!(q["p99_ms"], 150.0);
    assert_eq!(q["dead_lettered"], 0);
    let empty = buckets
        .iter()
        .filter(|b| b["delivered"] == 0 && b["failed"] == 0 && b["dead_lettered"] == 0)
        .count();
    assert_eq!(empty, 22);
    assert!(buckets
        .iter()
        .filter(|b| b["delivered"] == 0)
        .all(|b| b["p50_ms"].is_null()));
    assert_eq!(stats["totals"]["delivered"], 102);
    assert_eq!(stats["totals"]["failed"], 1);
    assert_eq!(stats["totals"]["dead_lettered"], 2);
    assert_eq!(stats["totals"]["p50_ms"], 4.0);

    // Every subscription together.
    let all = app
        .get("/api/v1/webhooks/stats?window=1d&step=1h", Some(&token))
        .await
        .json();
    assert!(all["subscription"].is_null());
    assert_eq!(all["totals"]["delivered"], 102);
    assert_eq!(all["totals"]["failed"], 2);
    assert_eq!(all["totals"]["dead_lettered"], 3);
    assert_eq!(bucket(&all, busy)["failed"], 2);

    // The default is the last hour by minute; none of the rows is that recent.
    let recent = app
        .get(&format!("/api/v1/webhooks/{sub}/stats"), Some(&token))
        .await
        .json();
    assert_eq!(recent["buckets"].as_array().map(Vec::len), Some(60));
    assert_eq!(recent["totals"]["delivered"], 0);
}

#[actix_rt::test]
async fn stats_refuse_bad_windows_and_unknown_subscriptions() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let sub = app.create_webhook(&token, &valid_webhook("checked")).await;
    let sub = sub["uuid"].as_str().unwrap();
    for (query, field) in [
        ("window=forever", "window: "),
        ("window=40d&step=1d", "window: "),
        ("window=1h&step=1s", "step: "),
        ("window=1h&step=7m", "step: "),
        ("window=7d&step=1m", "step: "),
        ("step=2h", "step: "),
        ("since=1h", "since: "),
    ] {
        for path in [
            format!("/api/v1/webhooks/{sub}/stats"),
            "/api/v1/webhooks/stats".into(),
        ] {
            let resp = app.get(&format!("{path}?{query}"), Some(&token)).await;
            assert_eq!(resp.status, 422, "{path}?{query}: {}", resp.text);
            assert!(
                resp.detail().starts_with(field),
                "{query}: {}",
                resp.detail()
            );
        }
    }
    let missing = app
        .get(
            &format!("/api/v1/webhooks/{}/stats", uuid::Uuid::new_v4()),
            Some(&token),
        )
        .await;
    assert_eq!(missing.status, 404);
    let viewer = app.viewer_token().await;
    let refused = app
        .get(&format!("/api/v1/webhooks/{sub}/stats"), Some(&viewer))
        .await;
    assert_eq!(refused.status, 403);
}
