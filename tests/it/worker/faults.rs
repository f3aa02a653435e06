//! The fault suite: crashes, bus restarts, a flapping receiver, bad input on the bus
//! a database that goes away and a worker out of descriptors. Each test waits on
//! conditions with deadlines.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_nats::jetstream;
use decnet_webhook::db::dead_letters;
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{
    eventually,
    process::Decnet,
    worker::{insert_subscription, WorkerApp},
    NatsServer, Recorded, Reply, TestDb, TestReceiver, WAIT,
};

const STREAM: &str = "DECNET_EVENTS";

fn event(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","payload":{{"n":1}}}}"#).into_bytes()
}

fn event_id(r: &Recorded) -> Option<&str> {
    r.header("x-decnet-event-id")
}

/// Event ids seen by the receiver (every request, duplicates included).
fn ids(rx: &TestReceiver) -> Vec<String> {
    rx.requests()
        .iter()
        .filter_map(|r| event_id(r).map(str::to_owned))
        .collect()
}

/// Publish probes until one reaches `rx` (the worker is consuming); how many it sent.
async fn probe_until_consuming(
    client: &async_nats::Client,
    rx: &TestReceiver,
    what: &str,
) -> usize {
    let mut probe = 0;
    eventually(WAIT, what, || {
        probe += 1;
        let body = event(&format!("probe-{probe}"));
        let client = client.clone();
        async move {
            client.publish("attacker.probe", body.into()).await.unwrap();
            client.flush().await.unwrap();
            (rx.count() >= 1).then_some(())
        }
    })
    .await;
    probe
}

/// Messages in the stream right now.
async fn stream_messages(client: &async_nats::Client) -> u64 {
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(STREAM).await.expect("the stream exists");
    stream.info().await.expect("stream info").state.messages
}

// ---------------------------------------------------------------------------------
// 1. kill -9 of the real binary in durable mode, 10,000 events in flight.

#[actix_rt::test]
async fn durable_mode_loses_nothing_when_the_worker_is_killed_mid_stream() {
    const N: usize = 10_000;
    let nats = NatsServer::start_jetstream();
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    // Slow enough that the 10,000 are still in flight when the kill comes.
    rx.set_default(Reply::Delay(Duration::from_millis(20), 200));
    insert_subscription(&db, "crash", &rx.url(), &["attacker.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_WEBHOOK_DURABLE", "true".to_owned()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("DECNET_WEBHOOK_TIMEOUT_SECS", "2".to_owned()),
        ("DECNET_WEBHOOK_RETRY_SCHEDULE", "0.05".to_owned()),
        ("DECNET_WEBHOOK_RELOAD_SECS", "3600".to_owned()),
    ];
    let mut first = Decnet::spawn(&["webhook"], &env, dir.path());
    let client = nats.client().await;

    // Consuming: a probe gets through.
    probe_until_consuming(&client, &rx, "the first worker consuming").await;
    first.assert_running();

    let before = stream_messages(&client).await;
    for i in 0..N {
        client
            .publish("attacker.bulk", event(&format!("e-{i}")).into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    // Every one of them is in the stream (so a miss below is the worker's).
    eventually(WAIT, "the stream holding every event", || {
        let client = client.clone();
        async move { (stream_messages(&client).await == before + N as u64).then_some(()) }
    })
    .await;

    rx.wait_for(1_000, Duration::from_secs(30)).await;
    first.kill9();
    let at_kill: HashSet<String> = ids(&rx)
        .into_iter()
        .filter(|i| i.starts_with("e-"))
        .collect();
    assert!(
        at_kill.len() < N,
        "the kill came after everything was delivered; the test proves nothing"
    );

    let mut second = Decnet::spawn(&["webhook"], &env, dir.path());
    let want: HashSet<String> = (0..N).map(|i| format!("e-{i}")).collect();
    // Unacknowledged messages come back after the consumer's ack_wait (about 10 s).
    eventually(
        Duration::from_secs(90),
        "every event id at the receiver",
        || async {
            let got: HashSet<String> = ids(&rx).into_iter().collect();
            let missing = want.difference(&got).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} missing"))
            }
        },
    )
    .await;
    second.assert_running();
    let all: Vec<String> = ids(&rx)
        .into_iter()
        .filter(|i| i.starts_with("e-"))
        .collect();
    let duplicates = all.len() - want.len();
    println!(
        "kill -9 at {} of {N} delivered; after restart all {N} arrived, {duplicates} duplicate deliveries",
        at_kill.len()
    );
}

// ---------------------------------------------------------------------------------
// 2. nats-server restarted mid-stream.

async fn publish_until_delivered(app: &WorkerApp, rx: &TestReceiver, prefix: &str) -> usize {
    let mut n = 0;
    eventually(
        Duration::from_secs(30),
        "delivery after the bus restart",
        || {
            n += 1;
            let id = format!("{prefix}-{n}");
            async move {
                // A fresh client per try: the server may still be coming back.
                if let Ok(client) = async_nats::connect(app.nats.url()).await {
                    let _ = client.publish("attacker.observed", event(&id).into()).await;
                    let _ = client.flush().await;
                }
                ids(rx).iter().any(|i| i.starts_with(prefix)).then_some(())
            }
        },
    )
    .await;
    n
}

#[actix_rt::test]
async fn core_mode_resumes_after_the_bus_restarts() {
    let mut app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    app.subscribe("bus-restart", &rx.url(), &["attacker.>"])
        .await;
    for i in 0..20 {
        app.publish("attacker.observed", &event(&format!("before-{i}")))
            .await;
    }
    rx.wait_for(20, WAIT).await;
    app.nats.restart();
    publish_until_delivered(&app, &rx, "after").await;
    let status = app.status().await;
    assert_eq!(status.running.len(), 1);
    app.stop().await.unwrap();
}

#[actix_rt::test]
async fn durable_mode_delivers_everything_published_before_the_bus_restarts() {
    const N: usize = 200;
    let mut app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[("webhook_durable", "true")],
    )
    .await;
    let rx = TestReceiver::start();
    // Slow: many are still unacknowledged when the server goes down.
    rx.set_default(Reply::Delay(Duration::from_millis(100), 200));
    app.subscribe("bus-restart", &rx.url(), &["attacker.>"])
        .await;
    let client = app.nats.client().await;
    let before = stream_messages(&client).await;
    for i in 0..N {
        client
            .publish("attacker.observed", event(&format!("before-{i}")).into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    eventually(WAIT, "the stream holding the first batch", || {
        let client = client.clone();
        async move { (stream_messages(&client).await == before + N as u64).then_some(()) }
    })
    .await;
    drop(client);
    // Some delivered, most still waiting in the stream or in flight.
    rx.wait_for(10, WAIT).await;
    let at_restart = rx.count();
    app.nats.restart();
    assert!(
        at_restart < N,
        "all delivered before the restart: proves nothing"
    );
    publish_until_delivered(&app, &rx, "after").await;
    let want: HashSet<String> = (0..N).map(|i| format!("before-{i}")).collect();
    eventually(
        Duration::from_secs(45),
        "every pre-restart event",
        || async {
            let got: HashSet<String> = ids(&rx).into_iter().collect();
            let missing: Vec<&String> = want.difference(&got).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} missing, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                ))
            }
        },
    )
    .await;
    let all: Vec<String> = ids(&rx)
        .into_iter()
        .filter(|i| i.starts_with("before-"))
        .collect();
    println!(
        "bus restart with {at_restart} of {N} delivered; all arrived, {} duplicates",
        all.len() - N
    );
    app.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------
// 3. A flapping receiver in durable mode.

#[actix_rt::test]
async fn durable_mode_flapping_receiver_every_event_delivered_or_dead_lettered() {
    const N: usize = 60;
    let app = WorkerApp::start_on(
        NatsServer::start_jetstream(),
        &[
            ("webhook_durable", "true"),
            ("webhook_circuit_threshold", "100000"),
            ("webhook_timeout_secs", "1"),
        ],
    )
    .await;
    let rx = TestReceiver::start();
    let cycle = [
        Reply::Status(200),
        Reply::Status(503),
        Reply::Delay(Duration::from_millis(1500), 200),
        Reply::Status(503),
        Reply::Reset,
        Reply::Status(200),
        Reply::Hang,
        Reply::Status(503),
        Reply::Reset,
    ];
    // Enough for every attempt of every event (3 each); 200 after.
    let script: Vec<Reply> = cycle.iter().cycle().take(N * 3).cloned().collect();
    rx.script(script.clone());
    let uuid = app.subscribe("flap", &rx.url(), &["attacker.>"]).await;
    let client = app.nats.client().await;
    for i in 0..N {
        client
            .publish("attacker.observed", event(&format!("f-{i}")).into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let want: HashSet<String> = (0..N).map(|i| format!("f-{i}")).collect();

    // Request k got script[k] (one receiver thread: recorded in reply order).
    let delivered = || -> HashSet<String> {
        rx.requests()
            .iter()
            .enumerate()
            .filter(|(k, _)| matches!(script.get(*k), None | Some(Reply::Status(200))))
            .filter_map(|(_, r)| event_id(r).map(str::to_owned))
            .collect()
    };
    let (dead, dead_ids) = eventually(Duration::from_secs(45), "every event settled", || async {
        let (rows, _) = dead_letters::list(&app.db, &uuid, 10_000, 0).await.ok()?;
        let dead_ids: HashSet<String> = rows.iter().map(|r| r.event_id.clone()).collect();
        let settled: HashSet<String> = delivered().union(&dead_ids).cloned().collect();
        (settled == want).then_some((rows, dead_ids))
    })
    .await;
    let delivered = delivered();
    let both: Vec<&String> = delivered.intersection(&dead_ids).collect();
    assert!(both.is_empty(), "delivered and dead-lettered: {both:?}");
    assert_eq!(dead.len(), dead_ids.len(), "one dead letter per event");
    assert_eq!(delivered.len() + dead_ids.len(), N);
    assert!(!delivered.is_empty() && !dead_ids.is_empty(), "a real mix");
    for row in &dead {
        assert_eq!(row.reason, "retries_exhausted", "{row:?}");
        assert_eq!(row.attempts, 3, "{row:?}");
    }
    // Everything acknowledged: nothing left for a redelivery.
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(STREAM).await.unwrap();
    let name = decnet_webhook::bus::durable::consumer_name(&uuid, "attacker.>");
    let info = eventually(WAIT, "no acknowledgement pending", || {
        let stream = stream.clone();
        let name = name.clone();
        async move {
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(&name).await.ok()?;
            let info = consumer.info().await.ok()?.clone();
            (info.num_ack_pending == 0 && info.num_pending == 0).then_some(info)
        }
    })
    .await;
    let (log, _) = decnet_webhook::db::delivery_log::list(&app.db, &uuid, Some(false), 1000, 0)
        .await
        .unwrap();
    let errors: HashSet<String> = log.iter().filter_map(|r| r.error.clone()).collect();
    println!("flapping receiver errors: {errors:?}");
    assert!(
        errors.len() >= 3,
        "503s, timeouts and dropped connections: {errors:?}"
    );
    println!(
        "flapping receiver: {} delivered, {} dead-lettered, {} requests, {} redelivered",
        delivered.len(),
        dead_ids.len(),
        rx.count(),
        info.num_redelivered
    );
    assert!(app.status().await.running.contains_key(&uuid));
    app.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------
// 4. Bad input on the bus.

#[actix_rt::test]
async fn garbage_huge_and_deep_input_is_dead_lettered_and_the_worker_keeps_going() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    let uuid = app.subscribe("bad-input", &rx.url(), &["attacker.>"]).await;

    let garbage: Vec<u8> = b"\xff\xfe\x00garbage\x01{".to_vec();
    let huge_garbage: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let deep: Vec<u8> = vec![b'['; 10_000];
    let deep_object: Vec<u8> = {
        let mut v = br#"{"id":"deep-obj","payload":"#.to_vec();
        v.extend(std::iter::repeat_n(b'[', 10_000));
        v.extend(std::iter::repeat_n(b']', 10_000));
        v.push(b'}');
        v
    };
    let huge_json: Vec<u8> = {
        let filler = "x".repeat(1_000_000 - 64);
        format!(r#"{{"id":"huge-json","payload":{{"blob":"{filler}"}}}}"#).into_bytes()
    };
    assert!(huge_json.len() <= 1_000_000);
    let bad = [&garbage, &huge_garbage, &deep, &deep_object];
    for body in bad {
        app.publish("attacker.observed", body).await;
    }
    app.publish("attacker.observed", &huge_json).await;
    app.publish("attacker.observed", &event("after-bad")).await;

    // The big valid one is delivered intact, and the normal one after it.
    let got = rx.wait_for(2, WAIT).await;
    let by_id: HashMap<&str, &Recorded> =
        got.iter().filter_map(|r| Some((event_id(r)?, r))).collect();
    assert!(by_id.contains_key("after-bad"), "{:?}", by_id.keys());
    let big = by_id
        .get("huge-json")
        .expect("the 1 MB JSON event delivered");
    assert_eq!(
        big.json()["payload"]["blob"].as_str().map(str::len),
        Some(1_000_000 - 64)
    );

    let rows = eventually(WAIT, "the bad input dead-lettered", || async {
        let (rows, total) = dead_letters::list(&app.db, &uuid, 100, 0).await.ok()?;
        (total as usize >= bad.len()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), bad.len(), "{rows:?}");
    assert!(rows.iter().all(|r| r.reason == "undecodable"), "{rows:?}");
    let mut kept: Vec<&[u8]> = rows.iter().map(|r| r.body.as_slice()).collect();
    kept.sort();
    let mut sent: Vec<&[u8]> = bad.iter().map(|b| b.as_slice()).collect();
    sent.sort();
    assert!(kept == sent, "every bad body kept exactly");
    assert_eq!(
        app.worker_stats()
            .undecodable
            .load(std::sync::atomic::Ordering::Relaxed),
        bad.len() as u64
    );

    // Still running and delivering.
    app.publish("attacker.observed", &event("still-alive"))
        .await;
    eventually(WAIT, "a later event", || async {
        ids(&rx).iter().any(|i| i == "still-alive").then_some(())
    })
    .await;
    assert!(app.status().await.running.contains_key(&uuid));
    app.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------
// 5. The database away for a while.

/// Makes the test database refuse writes until `restore`.
enum Outage {
    /// A second connection holding `BEGIN EXCLUSIVE`: every other writer gets
    /// SQLITE_BUSY.
    Sqlite(sea_orm::DatabaseConnection),
    /// Connections refused and the live ones terminated.
    Postgres {
        admin: sea_orm::DatabaseConnection,
        name: String,
    },
}

impl Outage {
    async fn begin(test_db: &TestDb) -> Self {
        if test_db.is_postgres() {
            let base = std::env::var("TEST_DATABASE_URL").unwrap();
            let admin = Database::connect(&base).await.unwrap();
            let name = url::Url::parse(&test_db.url)
                .unwrap()
                .path()
                .trim_start_matches('/')
                .to_owned();
            admin
                .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .await
                .unwrap();
            Outage::Postgres { admin, name }
        } else {
            let mut opts = sea_orm::ConnectOptions::new(test_db.url.clone());
            opts.max_connections(1)
                .min_connections(1)
                .sqlx_logging(false);
            let locker = Database::connect(opts).await.unwrap();
            locker.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
            Outage::Sqlite(locker)
        }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(locker) => {
                locker.execute_unprepared("COMMIT").await.unwrap();
                let _ = locker.close().await;
            }
            Outage::Postgres { admin, name } => {
                admin
                    .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                    .await
                    .unwrap();
                let _ = admin.close().await;
            }
        }
    }
}

#[actix_rt::test]
async fn delivery_continues_while_the_database_is_away_and_state_catches_up() {
    let app = WorkerApp::start(&[
        ("webhook_retry_schedule", "0.02"),
        ("webhook_circuit_threshold", "1000"),
    ])
    .await;
    let rx = TestReceiver::start();
    let uuid = app.subscribe("db-away", &rx.url(), &["attacker.>"]).await;
    // A second subscription whose receiver always fails: its failures and dead
    // letters must be written once the database is back.
    let broken = TestReceiver::start();
    broken.set_default(Reply::Status(500));
    let failing = app
        .subscribe("db-away-failing", &broken.url(), &["decky.>"])
        .await;
    app.publish("decky.d1.state", &event("fails-before")).await;
    eventually(WAIT, "the first failure recorded", || async {
        let row = decnet_webhook::db::subscriptions::get(&app.db, &failing)
            .await
            .ok()??;
        (row.consecutive_failures == 1).then_some(())
    })
    .await;

    let outage = Outage::begin(&app.test_db).await;
    let outage_start = chrono::Utc::now();
    // The fault is real: a write through the application's pool fails.
    let write = app
        .db
        .execute_unprepared("UPDATE webhook_subscription SET name = name WHERE 1 = 0")
        .await;
    assert!(write.is_err(), "the database still takes writes");

    // During the outage deliveries go on, successful and failing.
    app.publish("decky.d1.state", &event("fails-during")).await;
    for i in 0..50 {
        app.publish("attacker.observed", &event(&format!("during-{i}")))
            .await;
    }
    let want: HashSet<String> = (0..50).map(|i| format!("during-{i}")).collect();
    eventually(WAIT, "deliveries during the outage", || async {
        let got: HashSet<String> = ids(&rx).into_iter().collect();
        let missing = want.difference(&got).count();
        if missing == 0 {
            Ok(())
        } else {
            Err(format!("{missing} missing"))
        }
    })
    .await;
    broken.wait_for(4, WAIT).await;
    outage.end().await;

    // Afterwards the state written during the outage arrives.
    let row = eventually(Duration::from_secs(30), "the success written", || async {
        let row = decnet_webhook::db::subscriptions::get(&app.db, &uuid)
            .await
            .ok()??;
        let ok = row.consecutive_failures == 0
            && row.last_success_at.is_some_and(|t| t >= outage_start)
            && row.enabled;
        ok.then_some(row)
    })
    .await;
    assert!(row.last_failure_at.is_none());
    eventually(Duration::from_secs(30), "the failure written", || async {
        let row = decnet_webhook::db::subscriptions::get(&app.db, &failing)
            .await
            .ok()??;
        let ok = row.consecutive_failures == 2
            && row.last_failure_at.is_some_and(|t| t >= outage_start)
            && row.enabled;
        ok.then_some(())
    })
    .await;
    let (rows, total) = eventually(
        Duration::from_secs(30),
        "the dead letters written",
        || async {
            let (rows, total) = dead_letters::list(&app.db, &failing, 100, 0).await.ok()?;
            (total >= 2).then_some((rows, total))
        },
    )
    .await;
    let mut dead: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    dead.sort_unstable();
    assert_eq!(total, 2, "{rows:?}");
    assert_eq!(dead, ["fails-before", "fails-during"]);
    let (_, none) = dead_letters::list(&app.db, &uuid, 100, 0).await.unwrap();
    assert_eq!(none, 0);
    // The delivery log caught up too: one attempt per success, two per failure.
    let (_, logged) = eventually(
        Duration::from_secs(30),
        "the delivery log written",
        || async {
            let r = decnet_webhook::db::delivery_log::list(&app.db, &uuid, None, 1, 0)
                .await
                .ok()?;
            (r.1 == 50).then_some(r)
        },
    )
    .await;
    assert_eq!(logged, 50);

    // Still running and delivering.
    app.publish("attacker.observed", &event("after")).await;
    eventually(WAIT, "the last event", || async {
        ids(&rx).iter().any(|i| i == "after").then_some(())
    })
    .await;
    assert_eq!(app.status().await.running.len(), 2);
    app.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------
// 6. The worker out of descriptors: its shortage, not the receiver's fault.

#[actix_rt::test]
async fn a_worker_out_of_descriptors_retries_then_dead_letters_and_trips_nothing() {
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    // Every delivery opens a connection of its own, and so needs a descriptor.
    rx.set_default(Reply::Close(200));
    let uuid = insert_subscription(&db, "starved", &rx.url(), &["attacker.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("DECNET_WEBHOOK_RELOAD_SECS", "3600".to_owned()),
        // Any failure counted against the receiver trips it.
        ("DECNET_WEBHOOK_CIRCUIT_THRESHOLD", "1".to_owned()),
        // Two attempts, far enough apart for the test to give descriptors back.
        ("DECNET_WEBHOOK_RETRY_SCHEDULE", "3".to_owned()),
    ];
    let mut worker = Decnet::spawn(&["webhook"], &env, dir.path());
    worker.wait_log("subscriptions loaded").await;
    let client = nats.client().await;
    let probe = probe_until_consuming(&client, &rx, "the worker consuming").await;
    // No probe still on its way when descriptors run out.
    eventually(WAIT, "every probe delivered", || async {
        let got = ids(&rx);
        (1..=probe)
            .all(|i| got.contains(&format!("probe-{i}")))
            .then_some(())
    })
    .await;
    let limit = worker.open_files_limit();
    // Below what it has open: every new descriptor fails with EMFILE.
    let exhausted = libc::rlimit {
        rlim_cur: 0,
        rlim_max: limit.rlim_max,
    };

    // Out of descriptors for the first attempt only: the retry delivers.
    worker.set_open_files_limit(exhausted);
    client
        .publish("attacker.observed", event("retried").into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    worker
        .wait_log("delivery attempt failed for lack of local resources")
        .await;
    worker.set_open_files_limit(limit);
    eventually(WAIT, "the event delivered on its retry", || async {
        ids(&rx).iter().any(|i| i == "retried").then_some(())
    })
    .await;

    // Out of descriptors for every attempt: dead-lettered for what it is.
    worker.set_open_files_limit(exhausted);
    client
        .publish("attacker.observed", event("starved").into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    worker.wait_log("dead-lettered as local_failure").await;
    worker.set_open_files_limit(limit);
    let dead = eventually(WAIT, "the dead letter written", || async {
        let rows = dead_letters::list(&db, &uuid, 10, 0)
            .await
            .map(|(rows, _)| rows);
        match rows {
            Ok(rows) => rows
                .into_iter()
                .find(|r| r.event_id == "starved")
                .ok_or_else(|| worker.log()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert_eq!(dead.reason, "local_failure");
    assert_eq!(dead.attempts, 2);
    let error = dead.error.unwrap_or_default();
    assert!(error.contains("Too many open files"), "{error}");

    // Neither counted against the receiver: not tripped, and the next event goes.
    client
        .publish("attacker.observed", event("after").into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    eventually(WAIT, "the next event delivered", || async {
        ids(&rx).iter().any(|i| i == "after").then_some(())
    })
    .await;
    let row = decnet_webhook::db::subscriptions::get(&db, &uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.consecutive_failures, 0, "{:?}", row.last_error);
    assert!(row.auto_disabled_at.is_none(), "{:?}", row.last_error);
    assert!(row.enabled);
    worker.assert_running();
}
