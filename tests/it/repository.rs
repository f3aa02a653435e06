//! The database layer on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

use std::process::Command;

use chrono::{Duration as ChronoDuration, Utc};
use decnet_webhook::db::{self, subscriptions as subs};
use entity::webhook_subscription::ActiveModel;
use sea_orm::Set;

use crate::helpers::TestDb;

async fn insert_sub(db: &sea_orm::DatabaseConnection, name: &str) -> String {
    let row = subs::new_row(
        name,
        "https://1.1.1.1/hook",
        &"s".repeat(32),
        &["attacker.>".to_owned()],
        true,
    );
    subs::insert(db, row).await.expect("insert").uuid
}

#[actix_rt::test]
async fn migrations_are_idempotent() {
    let test_db = TestDb::new().await;
    let first = test_db.connect().await;
    insert_sub(&first, "kept").await;
    // A second start migrates again and keeps the data.
    let second = test_db.connect().await;
    let rows = subs::list_all(&second).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "kept");
    assert_eq!(rows[0].patterns(), vec!["attacker.>"]);
}

#[actix_rt::test]
async fn failure_counter_is_atomic_under_concurrency() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let uuid = insert_sub(&db, "busy").await;
    let now = Utc::now();
    let calls = (0..50).map(|i| {
        let db = db.clone();
        let uuid = uuid.clone();
        async move { subs::record_webhook_failure(&db, &uuid, now, &format!("HTTP 503 #{i}")).await }
    });
    let mut counts: Vec<i32> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("failure recorded"))
        .collect();
    counts.sort_unstable();
    // Every call saw its own increment: 1..=50, none lost, none repeated.
    assert_eq!(counts, (1..=50).collect::<Vec<_>>());
    let row = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert_eq!(row.consecutive_failures, 50);
    assert!(row.last_error.unwrap().starts_with("HTTP 503"));
    assert!(row.last_failure_at.is_some());
}

#[actix_rt::test]
async fn failure_error_is_truncated_and_success_resets() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let uuid = insert_sub(&db, "flaky").await;
    let long = "é".repeat(600);
    assert_eq!(
        subs::record_webhook_failure(&db, &uuid, Utc::now(), &long)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        subs::record_webhook_failure(&db, &uuid, Utc::now(), "x")
            .await
            .unwrap(),
        2
    );
    let row = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert_eq!(row.last_error.as_deref(), Some("x"));
    subs::record_webhook_failure(&db, &uuid, Utc::now(), &long)
        .await
        .unwrap();
    let row = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert_eq!(row.last_error.unwrap().chars().count(), 512);

    let ts = Utc::now();
    subs::record_webhook_success(&db, &uuid, ts).await.unwrap();
    let row = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert_eq!(row.consecutive_failures, 0);
    assert_eq!(row.last_error, None);
    assert_eq!(
        row.last_success_at.unwrap().timestamp_millis(),
        ts.timestamp_millis()
    );
    // A row that is gone counts nothing.
    assert_eq!(
        subs::record_webhook_failure(&db, "no-such-uuid", ts, "x")
            .await
            .unwrap(),
        0
    );
}

#[actix_rt::test]
async fn three_states_and_idempotent_trip() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let uuid = insert_sub(&db, "tripping").await;
    // Active.
    let row = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert!(row.enabled && row.auto_disabled_at.is_none());

    // Tripped.
    let first = Utc::now() - ChronoDuration::seconds(10);
    subs::trip_webhook_circuit(&db, &uuid, first).await.unwrap();
    let row = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert!(!row.enabled);
    assert_eq!(row.auto_disabled_at.unwrap().timestamp(), first.timestamp());
    assert!(subs::list_enabled(&db).await.unwrap().is_empty());

    // A second trip only re-stamps the time.
    let second = Utc::now();
    subs::trip_webhook_circuit(&db, &uuid, second)
        .await
        .unwrap();
    let again = subs::get(&db, &uuid).await.unwrap().unwrap();
    assert!(!again.enabled);
    assert_eq!(
        again.auto_disabled_at.unwrap().timestamp(),
        second.timestamp()
    );
    assert_eq!(again.name, row.name);
    assert_eq!(again.consecutive_failures, row.consecutive_failures);

    // Admin-paused: disabled without a trip stamp.
    let paused = insert_sub(&db, "paused").await;
    subs::update(
        &db,
        ActiveModel {
            uuid: sea_orm::Unchanged(paused.clone()),
            enabled: Set(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let row = subs::get(&db, &paused).await.unwrap().unwrap();
    assert!(!row.enabled && row.auto_disabled_at.is_none());
}

#[actix_rt::test]
async fn users_are_created_and_passwords_checked() {
    let test_db = TestDb::new().await;
    let bin = env!("CARGO_BIN_EXE_decnet");
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(bin)
            .args(args)
            .env("DECNET_DATABASE_URL", &test_db.url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("decnet runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dup = run(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "another password\n",
    );
    assert_eq!(dup.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let short = run(
        &["user", "add", "bob", "--role", "viewer", "--password-stdin"],
        "short\n",
    );
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let empty = run(
        &["user", "add", "bob", "--role", "viewer", "--password-stdin"],
        "\n",
    );
    assert_eq!(empty.status.code(), Some(2));

    let list = run(&["user", "list"], "");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("alice\tadmin"), "{listed}");
    assert!(!listed.contains("bob"));

    let db = test_db.connect().await;
    let alice = db::users::find_by_username(&db, "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(decnet_webhook::auth::verify_password(
        "correct horse battery",
        &alice.password_hash
    ));
    assert!(!decnet_webhook::auth::verify_password(
        "wrong",
        &alice.password_hash
    ));

    let passwd = run(
        &["user", "passwd", "alice", "--password-stdin"],
        "a new password\n",
    );
    assert!(passwd.status.success());
    let alice = db::users::find_by_username(&db, "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(decnet_webhook::auth::verify_password(
        "a new password",
        &alice.password_hash
    ));
    let missing = run(
        &["user", "passwd", "nobody", "--password-stdin"],
        "a new password\n",
    );
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let bin = env!("CARGO_BIN_EXE_decnet");
    for (var, value) in [
        ("DECNET_WEBHOOK_CIRCUIT_THRESHOLD", "0"),
        ("DECNET_WEBHOOK_TIMEOUT_SECS", "ten"),
        ("DECNET_NATS_URL", "::not a url::"),
        ("DECNET_DATABASE_URL", "nosuchdb"),
    ] {
        let out = Command::new(bin)
            .arg("migrate")
            .env(var, value)
            .output()
            .expect("decnet runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn unreachable_database_is_one_line_without_the_password() {
    let out = Command::new(env!("CARGO_BIN_EXE_decnet"))
        .arg("migrate")
        .env(
            "DECNET_DATABASE_URL",
            "postgres://decnet:hunter2@127.0.0.1:1/decnet",
        )
        .output()
        .expect("decnet runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unavailable"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
