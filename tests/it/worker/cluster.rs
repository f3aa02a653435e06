//! Durable mode on a 3-node NATS cluster: a replicated stream survives its leader's
//! death, a crashed worker's events come back to the others, a worker follows the
//! servers as they die and return, and a slow retry is never handed out twice.

use std::{collections::HashSet, sync::atomic::Ordering::Relaxed, time::Duration};

use async_nats::jetstream;
use decnet_webhook::{actors::WorkerStats, config::Settings};

use crate::helpers::{
    cluster::NatsCluster,
    eventually,
    process::Decnet,
    worker::{insert_subscription, WorkerHandle},
    Reply, TestDb, TestReceiver,
};

const STREAM: &str = "DECNET_EVENTS";

/// The bound on every wait here: each depends on the cluster electing leaders (meta,
/// stream and consumer, one after another after a server's death; a consumer's for
/// a new consumer), and on a loaded machine one election can take ten seconds or more.
const CLUSTER_WAIT: Duration = Duration::from_secs(60);

fn event(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","payload":{{"n":1}}}}"#).into_bytes()
}

/// Event ids seen by the receiver, duplicates included.
fn ids(rx: &TestReceiver) -> Vec<String> {
    rx.requests()
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id").map(str::to_owned))
        .collect()
}

fn settings(urls: &str, db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    let mut pairs: Vec<(String, String)> = vec![
        ("database_url".into(), db.url.clone()),
        ("nats_url".into(), urls.to_owned()),
        ("webhook_allow_private".into(), "true".into()),
        ("webhook_retry_schedule".into(), "0.05,0.05".into()),
        ("webhook_timeout_secs".into(), "2".into()),
        ("webhook_bus_reconnect_secs".into(), "30".into()),
        ("webhook_reload_secs".into(), "3600".into()),
        ("webhook_durable".into(), "true".into()),
        ("webhook_stream_replicas".into(), "3".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::from_pairs(pairs).expect("valid test settings")
}

/// Publish with the stream's acknowledgement, retrying (one message id, so a retry is
/// stored once) until it is stored: what a publisher must do to lose nothing.
async fn publish_acked(js: &jetstream::Context, subject: &str, id: &str) {
    eventually(CLUSTER_WAIT, "the stream storing a publish", || async {
        let publish = jetstream::message::PublishMessage::build()
            .payload(event(id).into())
            .message_id(id);
        match js.send_publish(subject.to_owned(), publish).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

/// Wait until the receiver has every id in `want`.
async fn wait_all(rx: &TestReceiver, want: &HashSet<String>, what: &str) {
    eventually(CLUSTER_WAIT, what, || async {
        let got: HashSet<String> = ids(rx).into_iter().collect();
        let missing = want.difference(&got).count();
        if missing == 0 {
            Ok(())
        } else {
            Err(format!("{missing} missing"))
        }
    })
    .await;
}

async fn client(cluster: &NatsCluster) -> async_nats::Client {
    cluster.client().await.expect("test client connects")
}

/// Wait until `workers` pull requests wait on the subscription's consumer: every
/// worker consumes (events published from now on are taken).
async fn wait_pulling(js: &jetstream::Context, uuid: &str, workers: usize) {
    let name = decnet_webhook::bus::durable::consumer_name(uuid, "attacker.>");
    eventually(CLUSTER_WAIT, "every worker pulling", || async {
        let stream = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| e.to_string())?;
        if info.num_waiting >= workers {
            Ok(())
        } else {
            Err(format!("{} pulling", info.num_waiting))
        }
    })
    .await;
}

/// Publish bursts of ten until `stats` (one worker's) counts a new delivery.
async fn takes_a_share(js: &jetstream::Context, stats: &WorkerStats, what: &str) {
    let before = stats.delivered.load(Relaxed);
    let mut burst = 0;
    eventually(CLUSTER_WAIT, what, || {
        burst += 1;
        async move {
            for i in 0..10 {
                let id = format!("{what}-{burst}-{i}");
                publish_acked(js, "attacker.share", &id).await;
            }
            let now = stats.delivered.load(Relaxed);
            (now > before).then_some(())
        }
    })
    .await;
}

#[actix_rt::test]
async fn killing_the_stream_leader_mid_stream_loses_nothing_with_three_replicas() {
    const N: usize = 300;
    let mut cluster = NatsCluster::start(3).await;
    let nats = client(&cluster).await;
    let js = jetstream::new(nats.clone());
    // A stream made earlier with one replica is brought to three at start.
    js.create_stream(jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["attacker.>".into(), "decky.>".into(), "system.>".into()],
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .expect("a one-replica stream");
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    let uuid = insert_subscription(&db, "replicated", &rx.url(), &["attacker.>"]).await;
    let worker = WorkerHandle::spawn(settings(&cluster.urls(), &test_db, &[])).await;
    let mut stream = js.get_stream(STREAM).await.expect("stream");
    let replicas = stream.info().await.expect("info").config.num_replicas;
    assert_eq!(replicas, 3, "the stream was brought to three replicas");
    wait_pulling(&js, &uuid, 1).await;

    let want: HashSet<String> = (0..N).map(|i| format!("e-{i}")).collect();
    for i in 0..N / 3 {
        publish_acked(&js, "attacker.bulk", &format!("e-{i}")).await;
    }
    let leader = cluster
        .stream_leader(&nats, STREAM)
        .await
        .expect("the stream has a leader");
    cluster.kill(leader);
    for i in N / 3..N {
        publish_acked(&js, "attacker.bulk", &format!("e-{i}")).await;
    }
    wait_all(&rx, &want, "every event published with acks delivered").await;
    assert_ne!(
        cluster.stream_leader(&nats, STREAM).await,
        Some(leader),
        "a new leader took over"
    );
    worker.stop().await.expect("worker stops cleanly");
}

#[actix_rt::test]
async fn a_killed_workers_held_events_are_redelivered_to_the_others() {
    const N: usize = 20;
    let cluster = NatsCluster::start(3).await;
    let nats = client(&cluster).await;
    let js = jetstream::new(nats.clone());
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    let uuid = insert_subscription(&db, "crash", &rx.url(), &["attacker.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    // The first worker's retry comes far later than the consumer's ack wait: its
    // events are held by in-progress acks until the kill.
    let env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        ("DECNET_NATS_URL", cluster.urls()),
        ("DECNET_WEBHOOK_DURABLE", "true".to_owned()),
        ("DECNET_WEBHOOK_STREAM_REPLICAS", "3".to_owned()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("DECNET_WEBHOOK_TIMEOUT_SECS", "2".to_owned()),
        ("DECNET_WEBHOOK_RETRY_SCHEDULE", "600".to_owned()),
        ("DECNET_WEBHOOK_RELOAD_SECS", "3600".to_owned()),
    ];
    let mut first = Decnet::spawn(&["webhook"], &env, dir.path());
    wait_pulling(&js, &uuid, 1).await;
    rx.set_default(Reply::Status(503));
    for i in 0..N {
        publish_acked(&js, "attacker.bulk", &format!("h-{i}")).await;
    }
    let want: HashSet<String> = (0..N).map(|i| format!("h-{i}")).collect();
    // Every event had its first attempt: the first worker holds them all, waiting.
    wait_all(&rx, &want, "a first attempt of every event").await;
    first.assert_running();
    first.kill9();

    rx.set_default(Reply::Status(200));
    let second = WorkerHandle::spawn(settings(&cluster.urls(), &test_db, &[])).await;
    eventually(
        CLUSTER_WAIT,
        "the killed worker's events delivered by the other",
        || async {
            let delivered = second.stats.delivered.load(Relaxed);
            (delivered >= N as u64)
                .then_some(())
                .ok_or(format!("{delivered} of {N}"))
        },
    )
    .await;
    second.stop().await.expect("worker stops cleanly");
}

#[actix_rt::test]
async fn a_slow_retry_is_not_handed_to_another_worker() {
    let cluster = NatsCluster::start(3).await;
    let nats = client(&cluster).await;
    let js = jetstream::new(nats.clone());
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    let uuid = insert_subscription(&db, "slow", &rx.url(), &["attacker.>"]).await;
    // One retry, later than the consumer's ack wait.
    let retry_later = (decnet_webhook::bus::durable::ACK_WAIT + Duration::from_secs(3))
        .as_secs()
        .to_string();
    let extra = [("webhook_retry_schedule", retry_later.as_str())];
    let first = WorkerHandle::spawn(settings(&cluster.urls(), &test_db, &extra)).await;
    let second = WorkerHandle::spawn(settings(&cluster.urls(), &test_db, &extra)).await;
    wait_pulling(&js, &uuid, 2).await;
    rx.script([Reply::Status(503)]);
    publish_acked(&js, "attacker.slow", "slow-1").await;
    eventually(CLUSTER_WAIT, "the retry delivered", || async {
        let attempts = ids(&rx).iter().filter(|i| *i == "slow-1").count();
        (attempts == 2 && rx.requests().last().is_some_and(|r| r.accepted()))
            .then_some(())
            .ok_or(format!("{attempts} attempts"))
    })
    .await;
    let name = decnet_webhook::bus::durable::consumer_name(&uuid, "attacker.>");
    let stream = js.get_stream(STREAM).await.expect("stream");
    let info = stream.consumer_info(&name).await.expect("consumer info");
    assert_eq!(
        info.num_redelivered, 0,
        "the server redelivered while the retry waited"
    );
    assert_eq!(ids(&rx).iter().filter(|i| *i == "slow-1").count(), 2);
    first.stop().await.expect("worker stops cleanly");
    second.stop().await.expect("worker stops cleanly");
}

#[actix_rt::test]
async fn a_worker_follows_its_servers_as_they_die_and_return_and_keeps_its_share() {
    let mut cluster = NatsCluster::start(3).await;
    let nats = client(&cluster).await;
    let js = jetstream::new(nats.clone());
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    let uuid = insert_subscription(&db, "follow", &rx.url(), &["attacker.>"]).await;
    // The worker under test knows two servers; it is the only one on the bus now.
    let two = format!("{},{}", cluster.nodes[0].url(), cluster.nodes[1].url());
    let follower = WorkerHandle::spawn(settings(&two, &test_db, &[])).await;
    let on = eventually(CLUSTER_WAIT, "the worker's server", || async {
        cluster.node_of_connection("decnet-webhook")
    })
    .await;
    let other = 1 - on;
    // Another worker on every server shares the subscription.
    let rest = WorkerHandle::spawn(settings(&cluster.urls(), &test_db, &[])).await;
    wait_pulling(&js, &uuid, 2).await;

    takes_a_share(&js, &follower.stats, "before").await;

    // Its server dies: it resumes on the other one it knows.
    cluster.kill(on);
    takes_a_share(&js, &follower.stats, "failed-over").await;

    // The server returns; then the one it moved to dies, so it reconnects to the
    // returned one and must pull there.
    cluster.restart(on);
    cluster.wait_stream_current(&nats, STREAM).await;
    cluster.kill(other);
    takes_a_share(&js, &follower.stats, "back").await;

    follower.stop().await.expect("worker stops cleanly");
    rest.stop().await.expect("worker stops cleanly");
}
