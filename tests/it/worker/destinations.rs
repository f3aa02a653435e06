//! The destination shapes against fakes of their services: each fake checks the
//! request as the service documents it (path, headers, body format) and answers as
//! the service does, partial failures and rate limits included. Real worker, real
//! NATS, real database.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use decnet_webhook::db::{dead_letters, subscriptions};
use entity::webhook_subscription::ActiveModel;
use sea_orm::Set;
use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    fakes::{Answer, FakeService, Seen},
    worker::{WorkerApp, SECRET},
    TestReceiver, WAIT,
};

async fn subscribe(
    app: &WorkerApp,
    url: &str,
    shape: &str,
    options: impl FnOnce(&mut ActiveModel),
) -> String {
    let mut row = subscriptions::new_row(shape, url, SECRET, &["attacker.>".to_owned()], true);
    row.shape = Set(shape.to_owned());
    options(&mut row);
    app.subscribe_row(row).await
}

async fn publish(app: &WorkerApp, id: &str, payload: Value) {
    publish_on(app, "attacker.observed", id, payload).await;
}

async fn publish_on(app: &WorkerApp, subject: &str, id: &str, payload: Value) {
    let body =
        json!({"id": id, "ts": "2026-04-24T10:00:00+00:00", "type": "login", "payload": payload});
    app.publish(subject, body.to_string().as_bytes()).await;
}

async fn dead(app: &WorkerApp, uuid: &str, n: u64) -> Vec<dead_letters::StoredDeadLetter> {
    eventually(WAIT, "the dead letters", || async {
        let (rows, total) = dead_letters::list(&app.db, uuid, 50, 0).await.ok()?;
        (total == n).then_some(rows)
    })
    .await
}

/// Splunk HEC's own checks: the path, JSON, and every object of a (concatenated)
/// batch carrying `event`.
fn splunk_checks(seen: &Seen, channel: &str) -> Result<Vec<Value>, String> {
    if seen.path_and_query != "/services/collector/event" {
        return Err(format!("no such endpoint {}", seen.path_and_query));
    }
    if seen.header("x-splunk-request-channel") != Some(channel) {
        return Err("Data channel is missing".into());
    }
    let events: Vec<Value> = serde_json::Deserializer::from_slice(&seen.body)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Invalid data format: {e}"))?;
    if events.is_empty()
        || events
            .iter()
            .any(|e| !e.is_object() || e.get("event").is_none())
    {
        return Err("Event field is required".into());
    }
    Ok(events)
}

#[actix_rt::test]
async fn splunk_hec_gets_concatenated_events_and_busy_is_retried() {
    let app = WorkerApp::start(&[]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let channel = Arc::new(Mutex::new(String::new()));
    let (c, ch) = (calls.clone(), channel.clone());
    let fake = FakeService::start(move |seen| {
        if seen.path_and_query == "/services/collector/ack" {
            return Answer::json(200, json!({"acks": {"7": true}}));
        }
        if let Err(text) = splunk_checks(seen, &ch.lock().unwrap()) {
            return Answer::json(400, json!({"text": text, "code": 6}));
        }
        // The first request finds the indexers busy, as HEC says it.
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            return Answer::json(503, json!({"text": "Server is busy", "code": 9}));
        }
        Answer::json(200, json!({"text": "Success", "code": 0, "ackId": 7}))
    });
    let mut row = subscriptions::new_row(
        "hec",
        &fake.url("/services/collector/event"),
        SECRET,
        &["attacker.>".to_owned()],
        true,
    );
    let uuid = row.uuid.clone().unwrap();
    *channel.lock().unwrap() = uuid.clone();
    row.shape = Set("splunk_hec".into());
    row.batch_max = Set(Some(3));
    row.batch_linger_ms = Set(Some(200));
    row.destination = Set(Some(
        json!({"index": "honeypot", "sourcetype": "decnet:event", "indexer_ack": true}),
    ));
    let uuid = app.subscribe_row(row).await;
    for id in ["h1", "h2", "h3"] {
        publish(
            &app,
            id,
            json!({"attacker_ip": "203.0.113.7", "decky": "d1"}),
        )
        .await;
    }
    let seen = fake.wait_for(2, WAIT).await;
    let events = splunk_checks(&seen[1], &uuid).expect("a valid HEC request");
    assert_eq!(
        seen[1].body, seen[0].body,
        "the busy batch is sent again as it was"
    );
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    for e in &events {
        assert_eq!(e["index"], "honeypot");
        assert_eq!(e["sourcetype"], "decnet:event");
        assert_eq!(e["source"], "decnet");
        assert_eq!(e["host"], "d1");
        assert_eq!(e["time"], 1_777_024_800);
    }
    assert!(
        !seen[1].body.starts_with(b"["),
        "no array around the events"
    );
    let row = app.row(&uuid).await;
    assert_eq!(row.consecutive_failures, 0);
    assert!(dead_letters::list(&app.db, &uuid, 10, 0)
        .await
        .unwrap()
        .0
        .is_empty());
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn splunk_hec_refusing_an_event_is_a_dead_letter_with_its_code() {
    let app = WorkerApp::start(&[]).await;
    let fake = FakeService::start(|_| {
        // A 200 is not enough: only code 0 is success.
        Answer::json(
            200,
            json!({"text": "Incorrect index", "code": 7, "invalid-event-number": 0}),
        )
    });
    let uuid = subscribe(
        &app,
        &fake.url("/services/collector/event"),
        "splunk_hec",
        |_| {},
    )
    .await;
    publish(&app, "bad-index", json!({})).await;
    let rows = dead(&app, &uuid, 1).await;
    assert_eq!(rows[0].reason, "non_retryable");
    assert_eq!(
        rows[0].error.as_deref(),
        Some("splunk code 7 (HTTP 200): Incorrect index")
    );
    assert_eq!(fake.seen().len(), 1, "not retried");
    app.stop().await.unwrap();
}

/// An Elasticsearch that keeps what it indexed: `create` of a known id is a 409,
/// a document with `"reject": true` a mapping error, and id `busy` is refused with
/// a 429 the first time.
fn elastic(indexed: Arc<Mutex<Vec<String>>>) -> impl Fn(&Seen) -> Answer + Send + Sync {
    let busy_once = AtomicUsize::new(0);
    move |seen| {
        let error = |reason: &str| {
            Answer::json(
                400,
                json!({"error": {"type": "illegal_argument_exception", "reason": reason}, "status": 400}),
            )
        };
        if seen.path_and_query != "/_bulk" {
            return error("no handler");
        }
        if seen.header("content-type") != Some("application/x-ndjson") {
            return error("Content-Type header [application/json] is not supported for _bulk; use application/x-ndjson");
        }
        let Ok(text) = std::str::from_utf8(&seen.body) else {
            return error("not UTF-8");
        };
        if !text.ends_with('\n') {
            return error("The bulk request must be terminated by a newline [\\n]");
        }
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() % 2 != 0 {
            return error("Malformed action/metadata line");
        }
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let (Ok(action), Ok(doc)) = (
                serde_json::from_str::<Value>(pair[0]),
                serde_json::from_str::<Value>(pair[1]),
            ) else {
                return error("Malformed line");
            };
            let Some(meta) = action.get("create") else {
                return error("only create is expected");
            };
            let id = meta["_id"].as_str().unwrap_or_default().to_owned();
            let index = meta["_index"].clone();
            let result = if doc["@timestamp"].is_null() || doc["decnet"].is_null() {
                json!({"_index": index, "_id": id, "status": 400, "error": {"type": "document_parsing_exception", "reason": "not ECS"}})
            } else if doc.pointer("/decnet/payload/reject") == Some(&json!(true)) {
                json!({"_index": index, "_id": id, "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [decnet.payload.reject]"}})
            } else if id == "busy" && busy_once.fetch_add(1, Ordering::SeqCst) == 0 {
                json!({"_index": index, "_id": id, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution: queue capacity 200"}})
            } else if indexed.lock().unwrap().contains(&id) {
                json!({"_index": index, "_id": id, "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists")}})
            } else {
                indexed.lock().unwrap().push(id.clone());
                json!({"_index": index, "_id": id, "_version": 1, "result": "created", "status": 201})
            };
            errors |= result["status"] != 201;
            items.push(json!({"create": result}));
        }
        Answer::json(200, json!({"took": 3, "errors": errors, "items": items}))
    }
}

#[actix_rt::test]
async fn elastic_bulk_items_are_judged_one_by_one() {
    let app = WorkerApp::start(&[]).await;
    let indexed = Arc::new(Mutex::new(vec!["dup".to_owned()]));
    let fake = FakeService::start(elastic(indexed.clone()));
    let uuid = subscribe(&app, &fake.url("/_bulk"), "elastic_bulk", |row| {
        row.batch_max = Set(Some(4));
        row.batch_linger_ms = Set(Some(300));
        row.destination = Set(Some(json!({"index": "decnet-%Y.%m"})));
    })
    .await;
    publish(&app, "ok", json!({"attacker_ip": "198.51.100.4"})).await;
    publish(&app, "dup", json!({})).await;
    publish(&app, "busy", json!({})).await;
    publish(&app, "bad", json!({"reject": true})).await;
    let seen = fake.wait_for(2, WAIT).await;
    let first = std::str::from_utf8(&seen[0].body).unwrap();
    assert_eq!(first.lines().count(), 8, "four actions and four documents");
    let action: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(
        action,
        json!({"create": {"_id": "ok", "_index": "decnet-2026.04"}})
    );
    let doc: Value = serde_json::from_str(first.lines().nth(1).unwrap()).unwrap();
    assert_eq!(doc["source"]["ip"], "198.51.100.4");
    assert_eq!(doc["event"]["kind"], "alert");
    // Only the item answered 429 goes again.
    let again = std::str::from_utf8(&seen[1].body).unwrap();
    assert_eq!(again.lines().count(), 2, "{again}");
    assert!(again.starts_with(r#"{"create":{"_id":"busy""#));
    let rows = dead(&app, &uuid, 1).await;
    assert_eq!(rows[0].event_id, "bad");
    assert_eq!(rows[0].reason, "non_retryable");
    assert!(
        rows[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("mapper_parsing_exception")),
        "{:?}",
        rows[0].error
    );
    let stored = String::from_utf8(rows[0].body.clone()).unwrap();
    assert!(
        stored.starts_with(r#"{"create":{"_id":"bad""#) && stored.ends_with('\n'),
        "the item alone, replayable"
    );
    let mut ids = indexed.lock().unwrap().clone();
    ids.sort();
    assert_eq!(ids, ["busy", "dup", "ok"]);
    assert_eq!(fake.seen().len(), 2);
    // The receiver answered: the circuit saw a success.
    assert_eq!(app.row(&uuid).await.consecutive_failures, 0);
    app.stop().await.unwrap();
}

const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";

#[actix_rt::test]
async fn sentinel_gets_arrays_under_one_megabyte_at_its_stream() {
    let app = WorkerApp::start(&[]).await;
    let fake = FakeService::start(|seen| {
        let path = format!(
            "/dataCollectionRules/{DCR}/streams/Custom-DecnetEvents_CL?api-version=2023-01-01"
        );
        if seen.path_and_query != path {
            return Answer::json(
                404,
                json!({"error": {"code": "NotFound", "message": "Data collection rule not found"}}),
            );
        }
        if seen.body.len() > 1_000_000 {
            return Answer::json(
                413,
                json!({"error": {"code": "ContentLengthLimitExceeded", "message": "Maximum allowed content length: 1048576 bytes"}}),
            );
        }
        match serde_json::from_slice::<Value>(&seen.body) {
            Ok(Value::Array(records)) if records.iter().all(|r| r["TimeGenerated"].is_string()) => {
                Answer::empty(204)
            }
            _ => Answer::json(
                400,
                json!({"error": {"code": "InvalidPayload", "message": "Payload is not a JSON array"}}),
            ),
        }
    });
    let uuid = subscribe(&app, &fake.url("/"), "sentinel", |row| {
        row.batch_max = Set(Some(5));
        row.batch_linger_ms = Set(Some(300));
        row.destination = Set(Some(
            json!({"dcr_immutable_id": DCR, "stream": "Custom-DecnetEvents_CL"}),
        ));
    })
    .await;
    let big = "x".repeat(300_000);
    for i in 0..5 {
        publish(&app, &format!("s{i}"), json!({"blob": big})).await;
    }
    let seen = eventually(WAIT, "all five records", || async {
        let seen = fake.seen();
        let records: usize = seen
            .iter()
            .map(|s| s.json().as_array().map_or(0, Vec::len))
            .sum();
        (records == 5).then_some(seen)
    })
    .await;
    assert!(seen.len() >= 2, "5 × 300 KB cannot go in one request");
    for s in &seen {
        assert!(s.body.len() <= 1_000_000, "{}", s.body.len());
        assert_eq!(s.header("content-type"), Some("application/json"));
    }
    assert!(dead_letters::list(&app.db, &uuid, 10, 0)
        .await
        .unwrap()
        .0
        .is_empty());
    app.stop().await.unwrap();
}

const ROUTING_KEY: &str = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12";

#[actix_rt::test]
async fn pagerduty_gets_its_key_on_the_wire_and_its_429_is_retried() {
    let app = WorkerApp::start(&[]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let fake = FakeService::start(move |seen| {
        let Ok(v) = serde_json::from_slice::<Value>(&seen.body) else {
            return Answer::json(
                400,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid JSON"]}),
            );
        };
        let mut errors = Vec::new();
        if v["routing_key"] != ROUTING_KEY {
            errors.push("'routing_key' is invalid");
        }
        if v["event_action"] != "trigger" {
            errors.push("'event_action' is invalid");
        }
        let summary = v["payload"]["summary"].as_str().unwrap_or_default();
        if summary.is_empty() || summary.chars().count() > 1024 {
            errors.push("'payload.summary' is invalid");
        }
        if !["critical", "error", "warning", "info"]
            .contains(&v["payload"]["severity"].as_str().unwrap_or_default())
        {
            errors.push("'payload.severity' is invalid");
        }
        if v["payload"]["custom_details"]["id"] == "refused" {
            errors.push("'payload.custom_details' is invalid");
        }
        if !errors.is_empty() {
            return Answer::json(
                400,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
            );
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            return Answer::json(
                429,
                json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly.  Please retry later."}),
            );
        }
        Answer::json(
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": v["dedup_key"]}),
        )
    });
    let uuid = subscribe(&app, &fake.url("/v2/enqueue"), "pagerduty", |row| {
        row.destination = Set(Some(json!({"min_severity": "error"})));
        // No DECNET_SECRET_KEY in this worker: stored as the secret is, in plaintext.
        row.destination_secret = Set(Some(ROUTING_KEY.into()));
    })
    .await;
    publish(
        &app,
        "p1",
        json!({"attacker_ip": "203.0.113.7", "decky": "d1"}),
    )
    .await;
    let seen = fake.wait_for(2, WAIT).await;
    let body = seen[1].json();
    assert_eq!(body["routing_key"], ROUTING_KEY);
    assert_eq!(body["dedup_key"], "decnet:203.0.113.7:d1");
    assert_eq!(
        body["payload"]["severity"], "error",
        "raised to the subscription's minimum"
    );
    assert_eq!(body["payload"]["custom_details"]["id"], "p1");
    publish(&app, "refused", json!({})).await;
    let rows = dead(&app, &uuid, 1).await;
    assert_eq!(
        rows[0].error.as_deref(),
        Some("non-retryable 400: Event object is invalid ('payload.custom_details' is invalid)")
    );
    let stored = String::from_utf8(rows[0].body.clone()).unwrap();
    assert!(
        !stored.contains(ROUTING_KEY),
        "the key never lands in a dead letter"
    );
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn discord_waits_as_its_429_says_and_teams_gets_a_card() {
    let app = WorkerApp::start(&[]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let discord = FakeService::start(move |seen| {
        let v = seen.json();
        if v["allowed_mentions"] != json!({"parse": []}) {
            return Answer::json(400, json!({"code": 50035, "message": "Invalid Form Body"}));
        }
        let fields = v["embeds"][0]["fields"].as_array().map_or(0, Vec::len);
        if fields > 25
            || v["content"]
                .as_str()
                .is_none_or(|c| c.chars().count() > 2000)
        {
            return Answer::json(400, json!({"code": 50035, "message": "Invalid Form Body"}));
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            return Answer::json(
                429,
                json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false}),
            );
        }
        Answer::empty(204)
    });
    let teams = FakeService::start(|seen| {
        let v = seen.json();
        let attachment = &v["attachments"][0];
        let card = &attachment["content"];
        if v["type"] != "message"
            || attachment["contentType"] != "application/vnd.microsoft.card.adaptive"
            || card["type"] != "AdaptiveCard"
        {
            return Answer::json(
                400,
                json!({"error": {"code": "InvalidRequestContent", "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}),
            );
        }
        // The Workflows trigger accepts, then posts on its own.
        Answer::empty(202)
    });
    let d = subscribe(&app, &discord.url("/api/webhooks/1/tok"), "discord", |_| {}).await;
    let t = subscribe(
        &app,
        &teams.url("/workflows/x/triggers/manual/paths/invoke"),
        "teams",
        |_| {},
    )
    .await;
    publish(&app, "c1", json!({"attacker_ip": "203.0.113.7", "decky": "d1", "service": "ssh", "score": 42, "user": "@everyone"})).await;
    let seen = discord.wait_for(2, WAIT).await;
    assert_eq!(seen[0].body, seen[1].body);
    let card = &teams.wait_for(1, WAIT).await[0].json()["attachments"][0]["content"];
    let facts: Vec<&str> = card["body"][1]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        facts,
        [
            "Attacker IP",
            "Decky",
            "Service",
            "Score",
            "Time",
            "Event id"
        ]
    );
    for uuid in [&d, &t] {
        assert_eq!(app.row(uuid).await.consecutive_failures, 0);
        assert!(dead_letters::list(&app.db, uuid, 10, 0)
            .await
            .unwrap()
            .0
            .is_empty());
    }
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn the_bus_messages_trace_context_reaches_the_receiver() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    app.subscribe("traced", &rx.url(), &["attacker.>"]).await;
    let client = app.nats.client().await;
    let mut headers = async_nats::HeaderMap::new();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    headers.insert("traceparent", parent);
    headers.insert("tracestate", "decnet=master");
    client
        .publish_with_headers(
            "attacker.observed",
            headers,
            r#"{"id":"t1","payload":{}}"#.into(),
        )
        .await
        .unwrap();
    let mut bad = async_nats::HeaderMap::new();
    bad.insert("traceparent", "00-not-a-trace-01");
    client
        .publish_with_headers(
            "attacker.observed",
            bad,
            r#"{"id":"t2","payload":{}}"#.into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let seen = rx.wait_for(2, WAIT).await;
    let by_id = |id: &str| {
        seen.iter()
            .find(|r| r.header("x-decnet-event-id") == Some(id))
            .unwrap()
    };
    assert_eq!(by_id("t1").header("traceparent"), Some(parent));
    assert_eq!(by_id("t1").header("tracestate"), Some("decnet=master"));
    assert_eq!(
        by_id("t2").header("traceparent"),
        None,
        "a malformed context is dropped"
    );
    app.stop().await.unwrap();
}

// --- With the receiver's credentials, set through the API as an operator would.

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A worker with a secret key, and the API beside it on its bus and database.
async fn worker_and_api() -> (WorkerApp, crate::helpers::TestApp, String) {
    let worker = WorkerApp::start(&[("secret_key", KEY)]).await;
    let api = crate::helpers::TestApp::spawn(
        crate::helpers::AppOptions::default()
            .setting("bus_enabled", "true")
            .setting("nats_url", &worker.nats.url())
            .setting("database_url", &worker.test_db.url)
            .setting("webhook_allow_private", "true")
            .setting("secret_key", KEY),
    )
    .await;
    let token = api.admin_token().await;
    (worker, api, token)
}

async fn create_running(
    worker: &WorkerApp,
    api: &crate::helpers::TestApp,
    token: &str,
    body: Value,
) -> String {
    let uuid = api.create_webhook(token, &body).await["uuid"]
        .as_str()
        .expect("created")
        .to_owned();
    eventually(WAIT, "the worker runs it", || async {
        worker
            .status()
            .await
            .running
            .contains_key(&uuid)
            .then_some(())
    })
    .await;
    uuid
}

#[actix_rt::test]
async fn splunk_and_elastic_get_their_own_authorization_schemes() {
    let (worker, api, token) = worker_and_api().await;
    let hec = FakeService::start(|seen| match seen.header("authorization") {
        None => Answer::json(401, json!({"text": "Token is required", "code": 2})),
        Some("Splunk hec-token-1") => Answer::json(200, json!({"text": "Success", "code": 0})),
        Some(_) => Answer::json(403, json!({"text": "Invalid token", "code": 4})),
    });
    let es = FakeService::start(|seen| {
        if seen.header("authorization") != Some("ApiKey ZGVjbmV0OnNlY3JldA==") {
            return Answer::json(
                401,
                json!({"error": {"type": "security_exception", "reason": "missing authentication credentials"}, "status": 401}),
            );
        }
        Answer::json(
            200,
            json!({"took": 1, "errors": false, "items": [{"create": {"status": 201}}]}),
        )
    });
    let splunk = create_running(&worker, &api, &token, json!({
        "name": "splunk", "url": hec.url("/services/collector/event"), "topic_patterns": ["attacker.>"],
        "shape": "splunk_hec", "headers": {"Authorization": "Splunk hec-token-1"}})).await;
    let elastic = create_running(
        &worker,
        &api,
        &token,
        json!({
        "name": "elastic", "url": es.url("/_bulk"), "topic_patterns": ["attacker.>"],
        "shape": "elastic_bulk", "headers": {"Authorization": "ApiKey ZGVjbmV0OnNlY3JldA=="}}),
    )
    .await;
    publish(&worker, "a1", json!({"attacker_ip": "203.0.113.7"})).await;
    hec.wait_for(1, WAIT).await;
    es.wait_for(1, WAIT).await;
    for uuid in [&splunk, &elastic] {
        eventually(WAIT, "a success on the row", || async {
            worker.row(uuid).await.last_success_at.map(|_| ())
        })
        .await;
        assert!(dead_letters::list(&worker.db, uuid, 10, 0)
            .await
            .unwrap()
            .0
            .is_empty());
    }
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn sentinel_sends_with_an_entra_token_for_azure_monitor() {
    use crate::helpers::oauth::{OAuthServer, TokenReply};
    let (worker, api, token) = worker_and_api().await;
    let entra = OAuthServer::start(TokenReply::Grant {
        lifetime: std::time::Duration::from_secs(3600),
        delay: std::time::Duration::ZERO,
    });
    let monitor = FakeService::start(|seen| {
        if !seen
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer tok-"))
        {
            return Answer::json(
                401,
                json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is missing or invalid."}}),
            );
        }
        Answer::empty(204)
    });
    create_running(
        &worker,
        &api,
        &token,
        json!({
        "name": "sentinel", "url": monitor.url(""), "topic_patterns": ["attacker.>"],
        "shape": "sentinel",
        "destination": {"dcr_immutable_id": DCR, "stream": "Custom-DecnetEvents_CL"},
        "auth": {"type": "oauth2_client_credentials", "token_url": entra.token_url(),
                 "client_id": "decnet-app", "client_secret": "entra-secret",
                 "scope": "https://monitor.azure.com//.default"}}),
    )
    .await;
    publish(&worker, "z1", json!({"attacker_ip": "203.0.113.7"})).await;
    let seen = monitor.wait_for(1, WAIT).await;
    assert_eq!(
        seen[0].path_and_query,
        format!("/dataCollectionRules/{DCR}/streams/Custom-DecnetEvents_CL?api-version=2023-01-01")
    );
    assert!(seen[0].json().is_array());
    let requests = entra.token_requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].form.contains("grant_type=client_credentials"),
        "{}",
        requests[0].form
    );
    assert!(
        requests[0]
            .form
            .contains("scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"),
        "{}",
        requests[0].form
    );
    worker.stop().await.unwrap();
}

/// A fake Discord webhook with a real bucket: `LIMIT` requests per `WINDOW`, each
/// answer saying what is left and when the bucket refills, and a 429 for a request
/// made while it is empty. The subscription may hold many deliveries in flight, but
/// requests to one Discord URL go one at a time, each after the answer before it was
/// read: paced by the headers, none of them ever meets an empty bucket.
#[actix_rt::test]
async fn discord_is_paced_by_its_rate_limit_headers_and_never_answers_429() {
    const LIMIT: u32 = 2;
    const WINDOW: Duration = Duration::from_millis(300);
    const EVENTS: usize = 6;
    let app = WorkerApp::start(&[]).await;
    let bucket = Arc::new(Mutex::new((Instant::now(), 0u32)));
    let limited = Arc::new(AtomicUsize::new(0));
    let (b, l) = (bucket.clone(), limited.clone());
    let discord = FakeService::start(move |_| {
        let now = Instant::now();
        let mut bucket = b.lock().unwrap();
        if now >= bucket.0 + WINDOW {
            *bucket = (now, 0);
        }
        // Rounded up to the millisecond, as Discord's own figures are.
        let reset_after = (bucket.0 + WINDOW - now).as_micros().div_ceil(1000) as f64 / 1000.0;
        if bucket.1 == LIMIT {
            l.fetch_add(1, Ordering::SeqCst);
            return Answer::json(
                429,
                json!({"message": "You are being rate limited.", "retry_after": reset_after, "global": false}),
            )
            .with_header("x-ratelimit-remaining", 0)
            .with_header("x-ratelimit-reset-after", format!("{reset_after:.3}"));
        }
        bucket.1 += 1;
        let mut answer = Answer::empty(204);
        answer
            .headers
            .push(("x-ratelimit-limit", LIMIT.to_string()));
        answer
            .headers
            .push(("x-ratelimit-remaining", (LIMIT - bucket.1).to_string()));
        answer
            .headers
            .push(("x-ratelimit-reset-after", format!("{reset_after:.3}")));
        answer
    });
    let uuid = subscribe(&app, &discord.url("/api/webhooks/7/tok"), "discord", |_| {}).await;
    for i in 0..EVENTS {
        publish(
            &app,
            &format!("p{i}"),
            json!({"attacker_ip": "203.0.113.7", "n": i}),
        )
        .await;
    }
    discord.wait_for(EVENTS, WAIT).await;
    assert_eq!(
        limited.load(Ordering::SeqCst),
        0,
        "a request met an empty bucket"
    );
    assert_eq!(discord.seen().len(), EVENTS);
    assert_eq!(app.row(&uuid).await.consecutive_failures, 0);
    app.stop().await.unwrap();
}

/// Discord's global rate limit counts every webhook called from one address. A 429
/// that says so holds the requests to every Discord URL, not only the one that got
/// it: the fake answers any request made inside the window it announced with another
/// 429. The second webhook's event is published only once the first one's 429 has
/// been read and its delivery settled (no retries here, so a dead letter).
#[actix_rt::test]
async fn discord_global_rate_limit_holds_every_discord_webhook() {
    const WINDOW: Duration = Duration::from_secs(1);
    let app = WorkerApp::start(&[("webhook_retry_schedule", "")]).await;
    let limited_until = Arc::new(Mutex::new(None::<Instant>));
    let early = Arc::new(AtomicUsize::new(0));
    let (until, e) = (limited_until.clone(), early.clone());
    let discord = FakeService::start(move |_| {
        let now = Instant::now();
        let mut until = until.lock().unwrap();
        let inside = until.is_some_and(|t| now < t);
        if until.is_none() || inside {
            if inside {
                e.fetch_add(1, Ordering::SeqCst);
            }
            let end = until.get_or_insert(now + WINDOW);
            let retry_after = (*end - now).as_secs_f64();
            return Answer::json(
                429,
                json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": true}),
            )
            .with_header("x-ratelimit-global", "true")
            .with_header("x-ratelimit-scope", "global");
        }
        Answer::empty(204)
    });
    let on = |subject: &'static str| {
        move |row: &mut ActiveModel| {
            row.name = Set(subject.to_owned());
            row.topic_patterns = Set(json!([subject]));
        }
    };
    let first = subscribe(
        &app,
        &discord.url("/api/webhooks/1/first"),
        "discord",
        on("attacker.first"),
    )
    .await;
    let second = subscribe(
        &app,
        &discord.url("/api/webhooks/2/second"),
        "discord",
        on("attacker.second"),
    )
    .await;
    publish_on(
        &app,
        "attacker.first",
        "g1",
        json!({"attacker_ip": "203.0.113.7"}),
    )
    .await;
    let rows = dead(&app, &first, 1).await;
    assert!(
        rows[0].error.as_deref().is_some_and(|e| e.contains("429")),
        "{:?}",
        rows[0].error
    );
    publish_on(
        &app,
        "attacker.second",
        "g2",
        json!({"attacker_ip": "203.0.113.7"}),
    )
    .await;
    eventually(WAIT, "the second webhook's delivery", || async {
        app.row(&second).await.last_success_at.map(|_| ())
    })
    .await;
    assert_eq!(
        early.load(Ordering::SeqCst),
        0,
        "a request went out inside the global limit's window"
    );
    assert_eq!(discord.seen().len(), 2);
    app.stop().await.unwrap();
}

/// Discord asks for a minute's pause; the worker stops long before it. The event held
/// back is kept as a shutdown dead letter, never sent into the empty bucket.
#[actix_rt::test]
async fn a_worker_stopping_while_discord_holds_its_requests_keeps_the_event() {
    let mut app = WorkerApp::start(&[]).await;
    let discord = FakeService::start(|_| {
        Answer::empty(204)
            .with_header("x-ratelimit-remaining", 0)
            .with_header("x-ratelimit-reset-after", 60)
    });
    let uuid = subscribe(
        &app,
        &discord.url("/api/webhooks/8/tok"),
        "discord",
        |row| row.ordered = Set(true),
    )
    .await;
    publish(&app, "first", json!({"attacker_ip": "203.0.113.7"})).await;
    discord.wait_for(1, WAIT).await;
    publish(&app, "held", json!({"attacker_ip": "203.0.113.8"})).await;
    // The second event has left the queue: its delivery waits for the bucket.
    eventually(WAIT, "the held event in flight", || async {
        let shares = decnet_webhook::db::ledger::shares(&app.db, &uuid)
            .await
            .ok()?;
        let (received, in_flight) = shares.iter().fold((0, 0), |(r, f), s| {
            (r + s.counts.received, f + s.counts.in_flight)
        });
        (received == 2 && in_flight == 1).then_some(())
    })
    .await;
    app.stop_worker().await;
    let rows = dead(&app, &uuid, 1).await;
    assert_eq!(rows[0].event_id, "held");
    assert_eq!(rows[0].reason, "shutdown");
    assert_eq!(
        discord.seen().len(),
        1,
        "nothing sent into the empty bucket"
    );
    app.stop().await.unwrap();
}

/// A fake HEC with indexer acknowledgement on its token: each request gets an
/// `ackId`, and `/services/collector/ack` says whether its events are indexed, once
/// `indexed` says so.
fn acknowledging_hec(indexed: Arc<AtomicBool>, channel: Arc<Mutex<String>>) -> FakeService {
    let next = AtomicUsize::new(0);
    FakeService::start(move |seen| {
        if seen.header("x-splunk-request-channel") != Some(channel.lock().unwrap().as_str()) {
            return Answer::json(400, json!({"text": "Data channel is missing", "code": 10}));
        }
        if seen.path_and_query == "/services/collector/ack" {
            let asked = seen.json()["acks"].as_array().cloned().unwrap_or_default();
            let done = indexed.load(Ordering::SeqCst);
            let acks: serde_json::Map<String, Value> = asked
                .iter()
                .map(|id| (id.to_string(), Value::Bool(done)))
                .collect();
            return Answer::json(200, json!({"acks": acks}));
        }
        let id = next.fetch_add(1, Ordering::SeqCst);
        Answer::json(200, json!({"text": "Success", "code": 0, "ackId": id}))
    })
}

async fn subscribe_acknowledged(
    app: &WorkerApp,
    hec: &FakeService,
    channel: &Mutex<String>,
) -> String {
    let mut row = subscriptions::new_row(
        "hec-ack",
        &hec.url("/services/collector/event"),
        SECRET,
        &["attacker.>".to_owned()],
        true,
    );
    *channel.lock().unwrap() = row.uuid.clone().unwrap();
    row.shape = Set("splunk_hec".into());
    row.destination = Set(Some(json!({"indexer_ack": true})));
    app.subscribe_row(row).await
}

fn posts(hec: &FakeService, path: &str) -> usize {
    hec.seen()
        .iter()
        .filter(|s| s.path_and_query == path)
        .count()
}

/// HEC's 200 only says the events arrived: the delivery stays in flight, asking
/// `/services/collector/ack`, until HEC says they are indexed.
#[actix_rt::test]
async fn splunk_hec_delivery_counts_only_once_indexing_is_confirmed() {
    let app = WorkerApp::start(&[]).await;
    let (indexed, channel) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(String::new())),
    );
    let hec = acknowledging_hec(indexed.clone(), channel.clone());
    let uuid = subscribe_acknowledged(&app, &hec, &channel).await;
    publish(&app, "acked", json!({"attacker_ip": "203.0.113.7"})).await;
    // Asked twice, answered "not yet" twice: still in flight, not delivered.
    eventually(WAIT, "two acknowledgement queries", || async {
        (posts(&hec, "/services/collector/ack") >= 2).then_some(())
    })
    .await;
    let counts = |app: &WorkerApp| {
        let (db, uuid) = (app.db.clone(), uuid.clone());
        async move {
            let shares = decnet_webhook::db::ledger::shares(&db, &uuid).await.ok()?;
            Some(shares.iter().fold((0, 0), |(d, f), s| {
                (d + s.counts.delivered, f + s.counts.in_flight)
            }))
        }
    };
    eventually(WAIT, "the event in flight", || async {
        (counts(&app).await? == (0, 1)).then_some(())
    })
    .await;
    indexed.store(true, Ordering::SeqCst);
    eventually(WAIT, "the event delivered", || async {
        (counts(&app).await? == (1, 0)).then_some(())
    })
    .await;
    let ack_query = hec
        .seen()
        .into_iter()
        .find(|s| s.path_and_query == "/services/collector/ack")
        .unwrap();
    assert_eq!(ack_query.json(), json!({"acks": [0]}));
    assert_eq!(posts(&hec, "/services/collector/event"), 1, "sent once");
    assert_eq!(app.row(&uuid).await.consecutive_failures, 0);
    app.stop().await.unwrap();
}

/// Events HEC never confirms are sent again, and dead-lettered saying so once the
/// retries run out: received is not indexed.
#[actix_rt::test]
async fn splunk_hec_events_never_confirmed_are_resent_then_dead_lettered() {
    let app = WorkerApp::start(&[
        ("webhook_splunk_ack_timeout_secs", "0.5"),
        ("webhook_retry_schedule", "0.1"),
    ])
    .await;
    let (indexed, channel) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(String::new())),
    );
    let hec = acknowledging_hec(indexed, channel.clone());
    let uuid = subscribe_acknowledged(&app, &hec, &channel).await;
    publish(&app, "lost", json!({"attacker_ip": "203.0.113.7"})).await;
    let rows = dead(&app, &uuid, 1).await;
    assert_eq!(rows[0].event_id, "lost");
    assert_eq!(rows[0].reason, "retries_exhausted");
    assert_eq!(rows[0].attempts, 2);
    let error = rows[0].error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("Splunk did not confirm indexing (ackId 1) within 500ms"),
        "{error}"
    );
    assert_eq!(
        posts(&hec, "/services/collector/event"),
        2,
        "sent again once"
    );
    app.stop().await.unwrap();
}
