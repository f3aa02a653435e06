//! Filters on save, the filter check, and the ledger as the API sums it.

use chrono::Utc;
use decnet_webhook::db::ledger::{self, Counts};
use serde_json::{json, Value};

use super::valid_webhook;
use crate::helpers::TestApp;

#[actix_rt::test]
async fn a_broken_filter_is_refused_with_its_position_and_a_good_one_is_kept() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let mut body = valid_webhook("filtered");
    body["filter"] = json!("topic == \"attacker.scored\"\n  and payload.score >= ");
    let resp = app.post("/api/v1/webhooks/", Some(&token), &body).await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    let detail = resp.detail();
    assert!(detail.starts_with("filter: "), "{detail}");
    assert!(detail.contains("line 2, column"), "{detail}");

    body["filter"] = json!("payload.score * 2 > 100");
    let resp = app.post("/api/v1/webhooks/", Some(&token), &body).await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    assert!(
        resp.detail().contains("line 1, column 1"),
        "{}",
        resp.detail()
    );

    let good = r#"payload.score >= 80 and payload.service in ["ssh", "rdp"]"#;
    body["filter"] = json!(good);
    let created = app.create_webhook(&token, &body).await;
    assert_eq!(created["filter"], good);
    let path = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());

    let resp = app
        .patch(&path, Some(&token), &json!({"filter": "payload.x |"}))
        .await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    assert!(resp.detail().starts_with("filter: "), "{}", resp.detail());
    assert_eq!(app.get(&path, Some(&token)).await.json()["filter"], good);

    let resp = app
        .patch(&path, Some(&token), &json!({"filter": null}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json()["filter"], Value::Null);
    let resp = app
        .patch(
            &path,
            Some(&token),
            &json!({"filter": "topic != \"system.log\""}),
        )
        .await;
    assert_eq!(resp.json()["filter"], "topic != \"system.log\"");
}

#[actix_rt::test]
async fn the_filter_check_answers_match_no_match_or_the_error() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let check = |filter: &str, event: Value| {
        let body = json!({"filter": filter, "event": event});
        let app = &app;
        let token = token.clone();
        async move {
            app.post("/api/v1/webhooks/filter-check", Some(&token), &body)
                .await
        }
    };
    let observed = json!({
        "topic": "attacker.observed",
        "type": "first_sighting",
        "payload": {"attacker_ip": "203.0.113.7", "decky": "decky-01", "service": "ssh"}
    });
    let f = r#"topic != "attacker.observed" or payload.decky == "decky-01""#;
    let resp = check(f, observed.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json(),
        json!({"result": "match", "stage": null, "error": null, "position": null})
    );
    let resp = check(r#"payload.service in ["rdp"]"#, observed.clone()).await;
    assert_eq!(resp.json()["result"], "no_match");

    let resp = check("payload.score >= 80", observed.clone()).await;
    let verdict = resp.json();
    assert_eq!(verdict["result"], "error");
    assert_eq!(verdict["stage"], "evaluate");
    assert!(verdict["error"].as_str().unwrap().contains("does not have"));

    let resp = check("payload.decky == ", observed.clone()).await;
    let verdict = resp.json();
    assert_eq!(verdict["result"], "error");
    assert_eq!(verdict["stage"], "compile");
    assert_eq!(verdict["position"]["line"], 1);

    let resp = check("true", json!([1, 2])).await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    assert!(resp.detail().starts_with("event: "));
    let resp = check("true", json!({"topic": 5})).await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    let resp = check(&"x".repeat(2049), observed.clone()).await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    assert!(resp.detail().starts_with("filter: "));

    let viewer = app.viewer_token().await;
    let resp = app
        .post(
            "/api/v1/webhooks/filter-check",
            Some(&viewer),
            &json!({"filter": "true", "event": {}}),
        )
        .await;
    assert_eq!(resp.status, 403);
}

#[actix_rt::test]
async fn the_ledger_sums_every_workers_share() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app.create_webhook(&token, &valid_webhook("counted")).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/{uuid}/ledger");
    let empty = app.get(&path, Some(&token)).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json()["received"], 0);
    assert_eq!(empty.json()["workers"], json!([]));

    let share = |received, delivered, reason: &str, dead, queued| Counts {
        received,
        delivered,
        dead_lettered: dead,
        dead_lettered_by_reason: [(reason.to_owned(), dead)].into(),
        queued,
        ..Counts::default()
    };
    let a = share(10, 7, "queue_overflow", 2, 1);
    let b = share(5, 4, "undecodable", 1, 0);
    ledger::report(&app.db, "worker-a", &[(uuid.clone(), a)], Utc::now())
        .await
        .unwrap();
    ledger::report(
        &app.db,
        "worker-b",
        &[(uuid.clone(), b.clone())],
        Utc::now(),
    )
    .await
    .unwrap();
    // A later report replaces the earlier one.
    let a = share(12, 9, "queue_overflow", 2, 1);
    ledger::report(&app.db, "worker-a", &[(uuid.clone(), a)], Utc::now())
        .await
        .unwrap();
    let got = app.get(&path, Some(&token)).await.json();
    assert_eq!(got["received"], 17);
    assert_eq!(got["delivered"], 13);
    assert_eq!(got["queued"], 1);
    assert_eq!(
        got["dead_lettered_by_reason"],
        json!({"queue_overflow": 2, "undecodable": 1})
    );
    let workers = got["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["worker_id"], "worker-a", "latest report first");
    assert_eq!(workers[0]["received"], 12);
    assert!(workers[1]["reported_at"].is_string());

    let unknown = app
        .get(
            "/api/v1/webhooks/00000000-0000-4000-8000-000000000000/ledger",
            Some(&token),
        )
        .await;
    assert_eq!(unknown.status, 404);
    // Deleting the subscription deletes its ledger.
    app.delete(&format!("/api/v1/webhooks/{uuid}"), Some(&token))
        .await;
    assert!(ledger::shares(&app.db, &uuid).await.unwrap().is_empty());
    // A report that lands after the delete is swept.
    let late = share(1, 1, "undecodable", 0, 0);
    ledger::report(&app.db, "worker-b", &[(uuid.clone(), late)], Utc::now())
        .await
        .unwrap();
    assert_eq!(ledger::sweep_orphans(&app.db).await.unwrap(), 1);
    assert!(ledger::shares(&app.db, &uuid).await.unwrap().is_empty());
}
