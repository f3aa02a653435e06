//! `stats`: what the web page's health charts cost the database. A delivery log of
//! `rows` attempts over the last day (half of them one busy subscription's, the rest
//! three others'), and a dead letter per hundred attempts, on SQLite and on
//! PostgreSQL (`DECNET_BENCH_POSTGRES_URL`, else `TEST_DATABASE_URL`; skipped without
//! either); then the median time of the queries behind
//! `GET /api/v1/webhooks/{uuid}/stats` (the busy subscription, last hour by minute and
//! last day by 30 minutes) and the header's all-subscriptions last 5 minutes.

use std::time::{Duration, Instant};

use chrono::Utc;
use decnet_webhook::db::{
    self,
    delivery_log::{self, LogRow},
    stats::{self, Window},
};
use entity::dead_letter;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set, TransactionTrait};
use serde_json::{json, Map, Value};

use super::report::{round, BenchError, Report};

/// Attempts per transaction, and dead letters per two.
const CHUNK: usize = 2_000;
/// Runs of each query; the median is reported.
const RUNS: usize = 7;
const TARGET_MS: f64 = 200.0;

/// The queries the page makes: (name, busy subscription or all, step, buckets).
const QUERIES: [(&str, bool, i64, i64); 3] = [
    ("hour_by_minute", true, 60, 60),
    ("day_by_30_minutes", true, 1800, 48),
    ("all_last_5_minutes", false, 60, 5),
];

pub async fn run(rows: usize, report: &mut Report) -> Result<(), BenchError> {
    report.set("rows", rows);
    report.set("busy_subscription_rows", rows / 2);
    report.set("target_ms", TARGET_MS);

    let dir = tempfile::tempdir().map_err(|e| BenchError::setup("temporary directory", e))?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("stats.db").display()
    );
    let sqlite = measure(&url, rows, report, "sqlite").await?;
    report.set("sqlite", sqlite);

    let postgres = std::env::var("DECNET_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    match postgres {
        Some(base) => {
            let name = format!("decnet_bench_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&base)
                .await
                .map_err(|e| BenchError::setup("PostgreSQL", e))?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .map_err(|e| BenchError::setup("create the bench database", e))?;
            let url = replace_db_name(&base, &name);
            let measured = measure(&url, rows, report, "postgres").await;
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            report.set("postgres", measured?);
        }
        None => report.set(
            "postgres",
            "skipped: set DECNET_BENCH_POSTGRES_URL=postgres://…",
        ),
    }
    Ok(())
}

/// Fill a fresh database at `url`, then time every query.
async fn measure(
    url: &str,
    rows: usize,
    report: &mut Report,
    label: &str,
) -> Result<Value, BenchError> {
    let db = db::connect_and_migrate(url)
        .await
        .map_err(|e| BenchError::setup(label, e))?;
    let now = Utc::now();
    let subs: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let filled = Instant::now();
    fill(&db, &subs, rows, now).await?;
    if label == "postgres" {
        // Fresh rows: the planner needs statistics, index-only scans a visibility map.
        db.execute_unprepared("VACUUM ANALYZE")
            .await
            .map_err(|e| BenchError::setup("VACUUM ANALYZE", e))?;
    } else {
        db.execute_unprepared("ANALYZE")
            .await
            .map_err(|e| BenchError::setup("ANALYZE", e))?;
    }
    let mut out = Map::new();
    out.insert(
        "fill_s".into(),
        round(filled.elapsed().as_secs_f64(), 1).into(),
    );
    for (name, busy, step, buckets) in QUERIES {
        let subscription = busy.then(|| subs[0].as_str());
        let mut times = Vec::with_capacity(RUNS);
        let mut counted = 0;
        for _ in 0..RUNS {
            let window = Window::ending_at(Utc::now(), step, buckets);
            let started = Instant::now();
            let attempts = stats::attempt_groups(&db, subscription, window)
                .await
                .map_err(|e| BenchError::setup(name, e))?;
            let dead = stats::dead_letter_groups(&db, subscription, window)
                .await
                .map_err(|e| BenchError::setup(name, e))?;
            // What the handler adds: percentiles per bucket and overall.
            for bucket in 0..buckets {
                let of_bucket: Vec<_> = attempts.iter().filter(|g| g.bucket == bucket).collect();
                std::hint::black_box(stats::percentile(of_bucket.iter().copied(), 0.99));
            }
            std::hint::black_box((stats::percentile(&attempts, 0.5), dead.len()));
            times.push(started.elapsed());
            counted = attempts.iter().map(|g| g.count).sum::<u64>();
        }
        times.sort();
        let median = ms(times[RUNS / 2]);
        out.insert(
            name.into(),
            json!({"median_ms": median, "max_ms": ms(times[RUNS - 1]), "attempts_counted": counted}),
        );
        report.target(
            format!("{label} {name} under {TARGET_MS} ms"),
            0.0,
            TARGET_MS,
            median,
        );
        // The roll-ups hold exactly the log's groups.
        let window = Window::ending_at(Utc::now(), step, buckets);
        let mut by_minute = stats::attempt_groups_by_minute(&db, subscription, window)
            .await
            .map_err(|e| BenchError::setup(name, e))?;
        let mut in_log = stats::attempt_groups_in_log(&db, subscription, window)
            .await
            .map_err(|e| BenchError::setup(name, e))?;
        let key = |g: &stats::AttemptGroup| (g.bucket, g.ok, g.class);
        by_minute.sort_by_key(key);
        in_log.sort_by_key(key);
        report.check(
            format!("{label} {name}: groups that differ from the log's"),
            0,
            (by_minute != in_log) as u64,
        );
    }
    let _ = db.close().await;
    Ok(Value::Object(out))
}

fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 1)
}

/// `rows` attempts spread evenly over the day before `now`: every other one the busy
/// subscription's; 1 % failed; latencies 5–300 ms with a slow tail. One dead letter per
/// hundred attempts.
async fn fill(
    db: &DatabaseConnection,
    subs: &[String],
    rows: usize,
    now: chrono::DateTime<Utc>,
) -> Result<(), BenchError> {
    let fail = |e| BenchError::setup("fill the delivery log", e);
    let step_us = 86_400_000_000i64 / rows.max(1) as i64;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut batch = Vec::with_capacity(CHUNK);
    let mut dead = Vec::new();
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let sub = if i % 2 == 0 {
            &subs[0]
        } else {
            &subs[1 + (i / 2) % 3]
        };
        let ok = x % 100 != 0;
        let latency = 5 + (x >> 8) % 295 + if (x >> 20) % 200 == 0 { 5_000 } else { 0 };
        let at = now - chrono::Duration::microseconds(step_us * (rows - i) as i64);
        batch.push(LogRow {
            subscription: sub.as_str().into(),
            event_id: format!("bench-{i}"),
            attempt: 1,
            at,
            status: Some(if ok { 200 } else { 503 }),
            latency_ms: latency as i32,
            error: (!ok).then(|| "HTTP 503".to_owned()),
        });
        if i % 100 == 0 {
            dead.push(dead_letter::ActiveModel {
                uuid: Set(uuid::Uuid::new_v4().to_string()),
                subscription_uuid: Set(sub.clone()),
                event_id: Set(format!("bench-{i}")),
                topic: Set("attacker.observed".into()),
                body: Set(b"{}".to_vec()),
                reason: Set("retries_exhausted".into()),
                error: Set(Some("HTTP 503".into())),
                status: Set(Some(503)),
                attempts: Set(3),
                created_at: Set(at),
            });
        }
        // As the worker writes them: the log and its per-minute roll-ups together.
        if batch.len() == CHUNK || i + 1 == rows {
            delivery_log::insert(db, &std::mem::take(&mut batch))
                .await
                .map_err(fail)?;
        }
    }
    let txn = db.begin().await.map_err(fail)?;
    for chunk in dead.chunks(CHUNK / 2) {
        dead_letter::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await
            .map_err(fail)?;
    }
    txn.commit().await.map_err(fail)
}

fn replace_db_name(base: &str, name: &str) -> String {
    match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{name}"),
        None => format!("{base}/{name}"),
    }
}
