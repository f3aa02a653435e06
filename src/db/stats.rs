//! Aggregates of the delivery log and the dead-letter store, grouped in SQL: the
//! database answers a few hundred rows however many attempts a window holds. Steps
//! of whole minutes read the log's per-minute roll-ups (`attempt_minutes`), a row per
//! group and minute rather than per attempt.
//!
//! Percentiles: SQLite has no percentile aggregate, and an exact one needs a sort of
//! every attempt in a bucket. Instead each bucket's latencies are counted in fixed
//! classes (`LATENCY_CLASSES`, about ×1.5 apart) with the least and greatest latency
//! of each class, in the same grouped scan on both databases; the caller reads a
//! percentile from those counts (`percentile`), exact to within its class and exact
//! where a class holds one value. The answer is bounded by buckets × classes × 2 rows.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};

/// Upper bounds (inclusive, milliseconds) of the latency classes; a last class
/// holds everything above the last bound.
pub const LATENCY_CLASSES: [i64; 28] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000,
];

/// A span of time cut into equal steps; `from` is a whole number of steps since
/// the Unix epoch, so buckets line up across calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub step_secs: i64,
    pub buckets: i64,
}

impl Window {
    /// The `buckets` steps that end with the one holding `now`.
    pub fn ending_at(now: DateTime<Utc>, step_secs: i64, buckets: i64) -> Self {
        let step = step_secs.max(1);
        let end = (now.timestamp().div_euclid(step) + 1) * step;
        let from = DateTime::from_timestamp(end - step * buckets, 0).unwrap_or(now);
        Self {
            from,
            step_secs: step,
            buckets,
        }
    }

    pub fn to(&self) -> DateTime<Utc> {
        self.from + chrono::Duration::seconds(self.step_secs * self.buckets)
    }

    /// The start of bucket `index`.
    pub fn bucket_start(&self, index: i64) -> DateTime<Utc> {
        self.from + chrono::Duration::seconds(self.step_secs * index)
    }
}

/// Attempts of one bucket, outcome and latency class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptGroup {
    pub bucket: i64,
    pub ok: bool,
    pub class: usize,
    pub count: u64,
    pub min_ms: i64,
    pub max_ms: i64,
}

/// Dead letters written in one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetterGroup {
    pub bucket: i64,
    pub count: u64,
}

/// Unix seconds of a timestamp column, as a whole number.
fn epoch(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"),
        _ => format!("CAST(strftime('%s', {column}) AS BIGINT)"),
    }
}

/// `$n` placeholders as the backend spells them.
pub(crate) fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    }
}

/// The class of a latency: the first whose bound it does not exceed (as
/// `latency_class_sql` decides in the database).
pub(crate) fn latency_class(latency_ms: i64) -> usize {
    LATENCY_CLASSES.partition_point(|bound| *bound < latency_ms)
}

pub(crate) fn latency_class_sql() -> String {
    let mut sql = String::from("CASE");
    for (i, bound) in LATENCY_CLASSES.iter().enumerate() {
        sql.push_str(&format!(" WHEN latency_ms <= {bound} THEN {i}"));
    }
    sql.push_str(&format!(" ELSE {} END", LATENCY_CLASSES.len()));
    sql
}

/// The values `$1`–`$4` (the window's start in epoch seconds, the step, its start and
/// end as `bounds` gives them: timestamps for the log, epoch seconds for the
/// roll-ups) and, for one subscription, `$5` with the condition that uses it.
fn window_values(
    subscription: Option<&str>,
    window: Window,
    bounds: [Value; 2],
) -> (Vec<Value>, &'static str) {
    let [from, to] = bounds;
    let mut values: Vec<Value> = vec![
        window.from.timestamp().into(),
        window.step_secs.into(),
        from,
        to,
    ];
    let by_subscription = match subscription {
        Some(uuid) => {
            values.push(uuid.to_owned().into());
            "subscription_uuid = $5 AND "
        }
        None => "",
    };
    (values, by_subscription)
}

/// A window's bounds as timestamps, for the rows' own time columns.
fn at_times(window: Window) -> [Value; 2] {
    [window.from.into(), window.to().into()]
}

/// Run `sql`, written with `$n` placeholders, on whichever database `db` is.
async fn run(
    db: &DatabaseConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_sql_and_values(
        backend,
        placeholders(backend, sql),
        values,
    ))
    .await
}

/// Attempts in `window`, grouped by bucket, outcome and latency class; of one
/// subscription, or of all. Steps of whole minutes read the per-minute roll-ups
/// (`attempt_minutes`), which hold the same groups; shorter ones read the log.
pub async fn attempt_groups(
    db: &DatabaseConnection,
    subscription: Option<&str>,
    window: Window,
) -> Result<Vec<AttemptGroup>, DbErr> {
    if window.step_secs % 60 == 0 {
        attempt_groups_by_minute(db, subscription, window).await
    } else {
        attempt_groups_in_log(db, subscription, window).await
    }
}

/// As [`attempt_groups`], from every attempt in the log.
pub async fn attempt_groups_in_log(
    db: &DatabaseConnection,
    subscription: Option<&str>,
    window: Window,
) -> Result<Vec<AttemptGroup>, DbErr> {
    let backend = db.get_database_backend();
    let (values, by_subscription) = window_values(subscription, window, at_times(window));
    let sql = format!(
        "SELECT ({epoch} - $1) / $2 AS bucket, \
                CAST(CASE WHEN ok THEN 1 ELSE 0 END AS BIGINT) AS ok_n, \
                CAST({class} AS BIGINT) AS class_n, \
                COUNT(*) AS n, \
                CAST(MIN(latency_ms) AS BIGINT) AS min_ms, \
                CAST(MAX(latency_ms) AS BIGINT) AS max_ms \
         FROM webhook_delivery_attempts \
         WHERE {by_subscription}attempted_at >= $3 AND attempted_at < $4 \
         GROUP BY bucket, ok_n, class_n",
        epoch = epoch(backend, "attempted_at"),
        class = latency_class_sql(),
    );
    read_attempt_groups(&run(db, &sql, values).await?)
}

/// As [`attempt_groups`], from the per-minute roll-ups (`window.step_secs` a whole
/// number of minutes, so every minute lies in one bucket).
pub async fn attempt_groups_by_minute(
    db: &DatabaseConnection,
    subscription: Option<&str>,
    window: Window,
) -> Result<Vec<AttemptGroup>, DbErr> {
    let bounds = [
        window.from.timestamp().into(),
        window.to().timestamp().into(),
    ];
    let (values, by_subscription) = window_values(subscription, window, bounds);
    let sql = format!(
        "SELECT (minute - $1) / $2 AS bucket, \
                CAST(CASE WHEN ok THEN 1 ELSE 0 END AS BIGINT) AS ok_n, \
                CAST(class AS BIGINT) AS class_n, \
                CAST(SUM(n) AS BIGINT) AS n, \
                CAST(MIN(min_ms) AS BIGINT) AS min_ms, \
                CAST(MAX(max_ms) AS BIGINT) AS max_ms \
         FROM webhook_attempt_minutes \
         WHERE {by_subscription}minute >= $3 AND minute < $4 \
         GROUP BY bucket, ok_n, class_n"
    );
    read_attempt_groups(&run(db, &sql, values).await?)
}

fn read_attempt_groups(rows: &[sea_orm::QueryResult]) -> Result<Vec<AttemptGroup>, DbErr> {
    rows.iter()
        .map(|row| {
            Ok(AttemptGroup {
                bucket: row.try_get::<i64>("", "bucket")?,
                ok: row.try_get::<i64>("", "ok_n")? != 0,
                class: usize::try_from(row.try_get::<i64>("", "class_n")?).unwrap_or(0),
                count: u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
                min_ms: row.try_get::<i64>("", "min_ms")?,
                max_ms: row.try_get::<i64>("", "max_ms")?,
            })
        })
        .collect()
}

/// Dead letters written in `window`, by bucket; of one subscription, or of all.
pub async fn dead_letter_groups(
    db: &DatabaseConnection,
    subscription: Option<&str>,
    window: Window,
) -> Result<Vec<DeadLetterGroup>, DbErr> {
    let backend = db.get_database_backend();
    let (values, by_subscription) = window_values(subscription, window, at_times(window));
    let sql = format!(
        "SELECT ({epoch} - $1) / $2 AS bucket, COUNT(*) AS n \
         FROM webhook_dead_letters \
         WHERE {by_subscription}created_at >= $3 AND created_at < $4 \
         GROUP BY bucket",
        epoch = epoch(backend, "created_at"),
    );
    let rows = run(db, &sql, values).await?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetterGroup {
                bucket: row.try_get::<i64>("", "bucket")?,
                count: u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
            })
        })
        .collect()
}

/// The `p` quantile (0–1) of the latencies counted in `groups` (one bucket's, or
/// several), by nearest rank, placed within its class by linear interpolation
/// between the class's least and greatest latency. `None` when nothing was counted.
pub fn percentile<'a>(groups: impl IntoIterator<Item = &'a AttemptGroup>, p: f64) -> Option<f64> {
    // Per class: count, least, greatest.
    let mut classes = [(0u64, i64::MAX, i64::MIN); LATENCY_CLASSES.len() + 1];
    let mut total = 0u64;
    for g in groups {
        let Some(class) = classes.get_mut(g.class) else {
            continue;
        };
        class.0 += g.count;
        class.1 = class.1.min(g.min_ms);
        class.2 = class.2.max(g.max_ms);
        total += g.count;
    }
    if total == 0 {
        return None;
    }
    let rank = ((p.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut below = 0u64;
    for (count, least, greatest) in classes {
        if count == 0 {
            continue;
        }
        if below + count >= rank {
            let position = if count == 1 {
                0.0
            } else {
                (rank - below - 1) as f64 / (count - 1) as f64
            };
            let value = least as f64 + (greatest - least) as f64 * position;
            return Some((value * 10.0).round() / 10.0);
        }
        below += count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(class: usize, count: u64, min_ms: i64, max_ms: i64) -> AttemptGroup {
        AttemptGroup {
            bucket: 0,
            ok: true,
            class,
            count,
            min_ms,
            max_ms,
        }
    }

    #[test]
    fn windows_end_with_the_step_that_holds_now() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:17:42Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = Window::ending_at(now, 60, 60);
        assert_eq!(w.from.to_rfc3339(), "2026-11-30T09:18:00+00:00");
        assert_eq!(w.to().to_rfc3339(), "2026-11-30T10:18:00+00:00");
        assert_eq!(w.bucket_start(59).to_rfc3339(), "2026-11-30T10:17:00+00:00");
    }

    #[test]
    fn percentiles_are_exact_where_a_class_holds_one_value() {
        // 90 attempts of 4 ms (class 3: 4–5 ms) and 10 of 800 ms (class 17).
        let groups = [group(3, 90, 4, 4), group(17, 10, 800, 800)];
        assert_eq!(percentile(&groups, 0.5), Some(4.0));
        assert_eq!(percentile(&groups, 0.9), Some(4.0));
        assert_eq!(percentile(&groups, 0.91), Some(800.0));
        assert_eq!(percentile(&groups, 0.99), Some(800.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn percentiles_interpolate_within_a_class() {
        // 11 attempts from 100 to 150 ms in one class: the median is the middle one.
        let groups = [group(12, 11, 100, 150)];
        assert_eq!(percentile(&groups, 0.5), Some(125.0));
        assert_eq!(percentile(&groups, 1.0), Some(150.0));
        assert_eq!(percentile(&groups, 0.0), Some(100.0));
        // Groups of several buckets add up.
        let split = [group(12, 5, 100, 120), group(12, 6, 110, 150)];
        assert_eq!(percentile(&split, 1.0), Some(150.0));
    }

    #[test]
    fn the_class_expression_covers_every_bound() {
        let sql = latency_class_sql();
        assert!(sql.contains("WHEN latency_ms <= 1 THEN 0"));
        assert!(sql.contains("WHEN latency_ms <= 60000 THEN 27"));
        assert!(sql.ends_with("ELSE 28 END"));
    }

    #[test]
    fn a_latency_falls_in_the_first_class_it_does_not_exceed() {
        assert_eq!(latency_class(0), 0);
        assert_eq!(latency_class(1), 0);
        assert_eq!(latency_class(2), 1);
        assert_eq!(latency_class(4), 3);
        assert_eq!(latency_class(60_000), 27);
        assert_eq!(latency_class(60_001), 28);
        assert_eq!(latency_class(i64::from(i32::MAX)), 28);
    }
}
