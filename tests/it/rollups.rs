//! The delivery log's per-minute roll-ups hold exactly the log's groups: through
//! batches of several statements and of a few rows, a retention sweep that ends
//! inside a minute, a subscription's deletion, and for attempts logged before the
//! roll-ups existed (rolled up by their migration).

use chrono::{DateTime, Duration, TimeZone, Utc};
use decnet_webhook::db::{
    delivery_log::{self, LogRow},
    stats::{self, AttemptGroup, Window},
};
use entity::delivery_attempt;
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, EntityTrait, Set};

use crate::helpers::TestDb;

const SUBS: [&str; 2] = ["sub-a", "sub-b"];
const ROWS: i64 = 600;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

/// Attempt `i`: every 7 s over 70 minutes, alternating subscriptions, latencies over
/// every class (one in 50 past the last bound), one in 9 failed.
fn row(i: i64) -> LogRow {
    let latency = if i % 50 == 0 {
        70_000
    } else {
        (i * 37) % 3_000
    };
    LogRow {
        subscription: SUBS[(i % 2) as usize].into(),
        event_id: format!("e{i}"),
        attempt: 1,
        at: base() + Duration::seconds(7 * i) + Duration::milliseconds(i % 1000),
        status: Some(if i % 9 == 0 { 500 } else { 200 }),
        latency_ms: latency as i32,
        error: (i % 9 == 0).then(|| "HTTP 500".to_owned()),
    }
}

fn model(row: &LogRow) -> delivery_attempt::ActiveModel {
    delivery_attempt::ActiveModel {
        subscription_uuid: Set(row.subscription.to_string()),
        event_id: Set(row.event_id.clone()),
        attempt: Set(row.attempt),
        attempted_at: Set(row.at),
        status: Set(row.status),
        latency_ms: Set(row.latency_ms),
        ok: Set(row.error.is_none()),
        error: Set(row.error.clone()),
        ..Default::default()
    }
}

/// The windows the console reads, over the rows' span: by minute and by 5 minutes.
fn windows() -> [Window; 2] {
    let end = base() + Duration::minutes(75);
    [
        Window::ending_at(end, 60, 90),
        Window::ending_at(end, 300, 18),
    ]
}

fn sorted(mut groups: Vec<AttemptGroup>) -> Vec<AttemptGroup> {
    groups.sort_by_key(|g| (g.bucket, g.ok, g.class));
    groups
}

/// Every window, per subscription and for all, reads the same groups from the
/// roll-ups as from the log; returns how many attempts all of them counted.
async fn assert_same(db: &DatabaseConnection) -> u64 {
    let mut counted = 0;
    for window in windows() {
        for subscription in [Some(SUBS[0]), Some(SUBS[1]), None] {
            let by_minute = stats::attempt_groups_by_minute(db, subscription, window)
                .await
                .unwrap();
            let in_log = stats::attempt_groups_in_log(db, subscription, window)
                .await
                .unwrap();
            assert_eq!(
                sorted(by_minute.clone()),
                sorted(in_log),
                "{subscription:?} by {} s",
                window.step_secs
            );
            // What the API reads for this window is the same.
            let read = stats::attempt_groups(db, subscription, window)
                .await
                .unwrap();
            assert_eq!(sorted(read), sorted(by_minute.clone()));
            if subscription.is_none() && window.step_secs == 60 {
                counted = by_minute.iter().map(|g| g.count).sum();
            }
        }
    }
    counted
}

#[actix_rt::test]
async fn roll_ups_hold_the_logs_groups_through_writes_deletes_and_sweeps() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rows: Vec<LogRow> = (0..ROWS).map(row).collect();
    // Batches of several statements (up to 128 rows each), then small ones, each
    // adding to minutes an earlier one already counted.
    for batch in rows[..400].chunks(150) {
        delivery_log::insert(&db, batch).await.unwrap();
    }
    for batch in rows[400..].chunks(7) {
        delivery_log::insert(&db, batch).await.unwrap();
    }
    assert_eq!(assert_same(&db).await, ROWS as u64);

    // Retention ending 30.5 s into a minute: that minute is counted again from the
    // attempts left in it.
    let cut = base() + Duration::minutes(20) + Duration::milliseconds(30_500);
    let swept = delivery_log::sweep(&db, cut).await.unwrap();
    let left = rows.iter().filter(|r| r.at >= cut).count() as u64;
    assert_eq!(swept, ROWS as u64 - left);
    assert_eq!(assert_same(&db).await, left);

    // A deleted subscription's roll-ups go with its attempts.
    delivery_log::delete_for_subscription(&db, SUBS[0])
        .await
        .unwrap();
    for window in windows() {
        let gone = stats::attempt_groups_by_minute(&db, Some(SUBS[0]), window)
            .await
            .unwrap();
        assert!(gone.is_empty(), "{gone:?}");
    }
    let kept = rows
        .iter()
        .filter(|r| r.at >= cut && &*r.subscription == SUBS[1])
        .count() as u64;
    assert_eq!(assert_same(&db).await, kept);
}

#[actix_rt::test]
async fn attempts_logged_before_the_roll_ups_existed_are_rolled_up_by_their_migration() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    // Back to the schema before the roll-ups, and a log written then.
    Migrator::down(&db, Some(1)).await.unwrap();
    let rows: Vec<LogRow> = (0..ROWS).map(row).collect();
    for chunk in rows.chunks(200) {
        delivery_attempt::Entity::insert_many(chunk.iter().map(model).collect::<Vec<_>>())
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(assert_same(&db).await, ROWS as u64);
}
