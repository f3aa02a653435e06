//! The built binary: signals, exit codes and the quick start.

use std::{os::unix::fs::PermissionsExt, process::Command, time::Duration};

use futures::StreamExt;
use nix::sys::signal::Signal;

use crate::helpers::{
    eventually, process::Decnet, worker::insert_subscription, NatsServer, Reply, TestDb,
    TestReceiver, WAIT,
};

fn worker_env(nats: &NatsServer, db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("DECNET_DATABASE_URL", db.url.clone()),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("DECNET_WEBHOOK_RELOAD_SECS", "3600".into()),
        ("DECNET_WEBHOOK_RETRY_SCHEDULE", "0.05".into()),
    ]
}

#[actix_rt::test]
async fn sighup_reloads_subscriptions() {
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let client = nats.client().await;
    let mut health = client.subscribe(decnet_webhook::bus::HEALTH).await.unwrap();
    client.flush().await.unwrap();
    let worker = Decnet::spawn(&["webhook"], &worker_env(&nats, &test_db), dir.path());
    // The first heartbeat: the worker is on the bus; then its first load is done.
    tokio::time::timeout(WAIT, health.next())
        .await
        .expect("heartbeat")
        .unwrap();
    worker.wait_log("subscriptions loaded").await;

    let rx = TestReceiver::start();
    insert_subscription(&db, "hup", &rx.url(), &["attacker.>"]).await;
    worker.signal(Signal::SIGHUP);
    worker.wait_log("SIGHUP: reloading subscriptions").await;
    worker.wait_log("subscriptions reloaded").await;
    eventually(WAIT, "delivery after SIGHUP", || async {
        client
            .publish("attacker.observed", r#"{"payload":{"via":"hup"}}"#.into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        (rx.count() >= 1).then_some(())
    })
    .await;
    assert_eq!(rx.requests()[0].json()["payload"]["via"], "hup");
}

#[actix_rt::test]
async fn sigterm_waits_for_in_flight_deliveries_then_exits_0() {
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    rx.set_default(Reply::Delay(Duration::from_millis(1500), 200));
    let uuid = insert_subscription(&db, "slow", &rx.url(), &["attacker.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Decnet::spawn(&["webhook"], &worker_env(&nats, &test_db), dir.path());
    worker.wait_log("subscriptions loaded").await;
    let client = nats.client().await;
    // Publish until one delivery is in flight (the receiver has it, answer pending).
    eventually(WAIT, "a delivery in flight", || async {
        client
            .publish(
                "attacker.observed",
                r#"{"id":"inflight","payload":{}}"#.into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
        (rx.count() >= 1).then_some(())
    })
    .await;
    worker.signal(Signal::SIGTERM);
    assert_eq!(worker.exit_code().await, Some(0), "{}", worker.log());
    // The delivery finished and its success was written before exit.
    let row = decnet_webhook::db::subscriptions::get(&db, &uuid)
        .await
        .unwrap()
        .unwrap();
    assert!(row.last_success_at.is_some(), "{}", worker.log());
    assert!(worker.log().contains("stopping"));
}

#[test]
fn agent_mode_refuses_master_commands() {
    for command in ["webhook", "api", "serve"] {
        let out = Command::new(env!("CARGO_BIN_EXE_decnet"))
            .arg(command)
            .env("DECNET_MODE", "agent")
            .env("DECNET_DATABASE_URL", "sqlite::memory:")
            .output()
            .expect("decnet runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("master only"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[actix_rt::test]
async fn serve_starts_with_no_configuration_and_idles_without_a_bus() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let no_bus = NatsServer::not_started();
    let mut serve = Decnet::spawn(
        &["serve"],
        &[
            ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
            ("DECNET_NATS_URL", no_bus.url()),
        ],
        dir.path(),
    );
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let body: serde_json::Value = eventually(WAIT, "the API", || async {
        let resp = http.get(&url).send().await.ok()?;
        resp.json().await.ok()
    })
    .await;
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    // The embedded default database and a private JWT key beside it.
    assert!(dir.path().join("decnet.db").exists());
    let key = dir.path().join(".decnet-jwt-secret");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&key).unwrap().len() >= 32);
    serve.signal(Signal::SIGTERM);
    assert_eq!(serve.exit_code().await, Some(0), "{}", serve.log());
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
}

/// `decnet serve` with no user: one line says how to make the first admin and where to
/// sign in, and the login page's endpoint says no user exists; the one-shot commands
/// print their answer alone; once a user exists the hint is gone.
#[actix_rt::test]
async fn a_first_run_says_how_to_create_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let no_bus = NatsServer::not_started();
    let env = [
        ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
        ("DECNET_NATS_URL", no_bus.url()),
    ];
    const HINT: &str = "no user exists yet: create the first admin with \
                        `decnet user add admin --role admin`, then sign in at";

    // A one-shot command on a new database: its answer on stdout, and one line on
    // stderr for the migrations it applied; nothing of the migrator's own.
    let fresh = Decnet::run(&["user", "list"], &env, dir.path(), "");
    assert!(fresh.status.success());
    assert_eq!(String::from_utf8_lossy(&fresh.stdout), "");
    let stderr = String::from_utf8_lossy(&fresh.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("decnet: applied ") && lines[0].ends_with(" database migration(s)"),
        "{stderr}"
    );

    let mut serve = Decnet::spawn(&["serve"], &env, dir.path());
    serve
        .wait_log(&format!("{HINT} http://127.0.0.1:{port}/"))
        .await;
    let http = reqwest::Client::new();
    let first_run = format!("http://127.0.0.1:{port}/api/v1/auth/first-run");
    let body: serde_json::Value = http
        .get(&first_run)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"no_users": true}));

    // The command the hint gives, as typed: its answer alone (the database is migrated).
    let added = Decnet::run(
        &[
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &env,
        dir.path(),
        "first-admin-password\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&added.stdout),
        "user admin created with role admin\n"
    );
    assert_eq!(String::from_utf8_lossy(&added.stderr), "");
    let body: serde_json::Value = http
        .get(&first_run)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"no_users": false}));
    serve.signal(Signal::SIGTERM);
    assert_eq!(serve.exit_code().await, Some(0), "{}", serve.log());

    // The next start has a user: no hint.
    let mut again = Decnet::spawn(&["serve"], &env, dir.path());
    again.wait_log("API listening").await;
    let ready = format!("http://127.0.0.1:{port}/healthz");
    eventually(WAIT, "the API", || async {
        http.get(&ready)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    again.signal(Signal::SIGTERM);
    assert_eq!(again.exit_code().await, Some(0), "{}", again.log());
    assert!(
        !again.log().contains("no user exists yet"),
        "{}",
        again.log()
    );
}
