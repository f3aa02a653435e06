//! Durable mode: JetStream consumers, acknowledged after success or dead-lettering.

use std::collections::HashSet;

use crate::helpers::{worker::WorkerApp, NatsServer, TestReceiver, WAIT};

fn ids(rx: &TestReceiver) -> Vec<String> {
    rx.requests()
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id").map(str::to_owned))
        .collect()
}

#[actix_rt::test]
async fn events_published_while_no_worker_runs_are_delivered_after_restart() {
    let mut app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[("webhook_durable", "true")],
    )
    .await;
    let rx = TestReceiver::start();
    app.subscribe("durable", &rx.url(), &["attacker.>"]).await;
    for i in 0..5 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"live-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    rx.wait_for(5, WAIT).await;

    app.stop_worker().await;
    for i in 0..10 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"down-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    app.start_worker().await;
    let got = rx.wait_for(15, WAIT).await;
    let ids = ids(&rx);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 15, "every event once: {ids:?}");
    assert_eq!(got.len(), 15);
    for i in 0..10 {
        assert!(unique.contains(&format!("down-{i}")), "down-{i} missing");
    }
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn overlapping_patterns_deliver_once_in_durable_mode() {
    let app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[("webhook_durable", "true")],
    )
    .await;
    let rx = TestReceiver::start();
    app.subscribe("overlap", &rx.url(), &["attacker.>", "attacker.observed"])
        .await;
    for i in 0..10 {
        app.publish(
            "attacker.observed",
            format!(r#"{{"id":"o-{i}","payload":{{}}}}"#).as_bytes(),
        )
        .await;
    }
    app.publish("attacker.end", br#"{"id":"sentinel","payload":{}}"#)
        .await;
    rx.wait_for(11, WAIT).await;
    // The sentinel went through one consumer only; let the other consumer's copies
    // (if any) arrive by waiting for a second sentinel on the overlapping subject.
    app.publish("attacker.observed", br#"{"id":"sentinel-2","payload":{}}"#)
        .await;
    rx.wait_for(12, WAIT).await;
    let ids = ids(&rx);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates: {ids:?}");
    assert_eq!(ids.len(), 12);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn deleting_a_subscription_deletes_its_consumers() {
    use crate::helpers::app::{AppOptions, TestApp};
    let nats = NatsServer::start_jetstream();
    let url = nats.url();
    let mut worker = WorkerApp::start_on(nats, &[("webhook_durable", "true")]).await;
    let rx = TestReceiver::start();
    let uuid = worker
        .subscribe("to-delete", &rx.url(), &["attacker.>", "decky.*.state"])
        .await;
    let js = async_nats::jetstream::new(worker.nats.client().await);
    let stream = js.get_stream("DECNET_EVENTS").await.unwrap();
    let names: Vec<String> = ["attacker.>", "decky.*.state"]
        .iter()
        .map(|p| decnet_webhook::bus::durable::consumer_name(&uuid, p))
        .collect();
    let existing = || async {
        let mut found = 0;
        for name in &names {
            if stream.consumer_info(name).await.is_ok() {
                found += 1;
            }
        }
        found
    };
    crate::helpers::eventually(WAIT, "one durable consumer per pattern", || async {
        (existing().await == 2).then_some(())
    })
    .await;

    // The API (same database, same bus, durable) deletes the row and the consumers.
    let api = TestApp::spawn(
        AppOptions::default()
            .setting("bus_enabled", "true")
            .setting("nats_url", &url)
            .setting("database_url", &worker.test_db.url)
            .setting("webhook_durable", "true"),
    )
    .await;
    let token = api.admin_token().await;
    let resp = api
        .delete(&format!("/api/v1/webhooks/{uuid}"), Some(&token))
        .await;
    assert_eq!(resp.status, 200);
    crate::helpers::eventually(WAIT, "the consumers gone", || async {
        (existing().await == 0).then_some(())
    })
    .await;
    worker.stop_worker().await;
}

#[actix_rt::test]
async fn switching_core_then_durable_again_does_not_replay_what_core_mode_delivered() {
    use crate::helpers::worker::{settings, WorkerHandle};
    let mut app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[("webhook_durable", "true")],
    )
    .await;
    let rx = TestReceiver::start();
    let uuid = app.subscribe("switch", &rx.url(), &["attacker.>"]).await;
    app.publish_events("durable-1", 5).await;
    rx.wait_for(5, WAIT).await;
    app.stop_worker().await;

    // Core mode: delivered live, while the stream still captures the subject.
    let core = WorkerHandle::spawn(settings(
        &app.nats,
        &app.test_db,
        &[("webhook_durable", "false")],
    ))
    .await;
    crate::helpers::eventually(WAIT, "the core worker running", || async {
        core.status()
            .await
            .running
            .contains_key(&uuid)
            .then_some(())
    })
    .await;
    app.publish_events("core", 5).await;
    rx.wait_for(10, WAIT).await;
    core.stop().await.expect("core worker stops cleanly");

    // Durable again: starts at new messages, so the core events are not sent twice.
    app.start_worker().await;
    app.wait_running(&[&uuid]).await;
    app.publish_events("durable-2", 5).await;
    rx.wait_for(15, WAIT).await;
    let ids = ids(&rx);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 15, "{ids:?}");
    assert_eq!(ids.len(), 15, "nothing replayed: {ids:?}");
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn more_replicas_than_servers_stops_the_start_naming_the_setting() {
    use crate::helpers::{worker::settings, TestDb};
    use decnet_webhook::startup::{Application, Components};
    let nats = NatsServer::start_jetstream();
    let db = TestDb::new().await;
    let result = Application::build(
        settings(
            &nats,
            &db,
            &[
                ("webhook_durable", "true"),
                ("webhook_stream_replicas", "3"),
            ],
        ),
        Components {
            api: false,
            worker: true,
        },
        None,
        None,
    )
    .await;
    let Err(e) = result else {
        panic!("a start with three replicas on one server succeeded");
    };
    let message = e.to_string();
    assert!(
        message.contains("DECNET_WEBHOOK_STREAM_REPLICAS"),
        "{message}"
    );
}

#[actix_rt::test]
async fn own_publishes_to_a_captured_subject_are_stored_with_a_message_id() {
    use crate::helpers::{worker::settings, TestDb};
    use decnet_webhook::bus::{durable, Bus, SUBSCRIPTIONS_CHANGED};
    let nats = NatsServer::start_jetstream();
    let db = TestDb::new().await;
    let settings = settings(&nats, &db, &[("webhook_durable", "true")]);
    let bus = Bus::connect(&settings).await;
    let client = nats.client().await;
    durable::prepare(&client, &durable::StreamSpec::from_settings(&settings))
        .await
        .expect("the stream is prepared");
    bus.publish_json(SUBSCRIPTIONS_CHANGED, &serde_json::json!({}))
        .await;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("DECNET_EVENTS").await.expect("stream");
    let stored = crate::helpers::eventually(WAIT, "the signal stored", || async {
        stream
            .get_last_raw_message_by_subject(SUBSCRIPTIONS_CHANGED)
            .await
            .ok()
    })
    .await;
    assert!(
        stored.headers.get("Nats-Msg-Id").is_some(),
        "published with a message id, as a JetStream publish: {:?}",
        stored.headers
    );
}
