//! `webhook_attempt_minutes`: the delivery log rolled up per subscription, minute,
//! outcome and latency class. Every write of attempts adds to it in the same
//! transaction, and every delete of attempts takes from it, so a window of whole
//! minutes reads the same groups from here as from the log, in a row per group and
//! minute instead of a row per attempt.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::attempt_minute::{Column, Entity};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement, Value,
};

use super::stats::{latency_class, latency_class_sql};

const MINUTE: i64 = 60;
const COLUMNS: &str = "INSERT INTO webhook_attempt_minutes \
    (subscription_uuid, minute, ok, class, n, min_ms, max_ms) VALUES ";
const ARITY: usize = 7;
/// Groups per statement, at most (a power of two, as the log's statements).
const PER_STATEMENT: usize = 64;

#[derive(Clone, Copy)]
struct Tally {
    n: i64,
    min_ms: i64,
    max_ms: i64,
}

/// Attempts about to be written, counted per subscription, then per (minute,
/// outcome, class).
#[derive(Default)]
pub struct Rollup {
    groups: HashMap<String, HashMap<(i64, bool, i32), Tally>>,
}

impl Rollup {
    pub fn add(&mut self, subscription: &str, at: DateTime<Utc>, ok: bool, latency_ms: i64) {
        let minute = at.timestamp().div_euclid(MINUTE) * MINUTE;
        let class = i32::try_from(latency_class(latency_ms)).unwrap_or(i32::MAX);
        // A batch is mostly one subscription's: its name is copied once, not per row,
        // and looked up once per row.
        let groups = match self.groups.get_mut(subscription) {
            Some(groups) => groups,
            None => self.groups.entry(subscription.to_owned()).or_default(),
        };
        groups
            .entry((minute, ok, class))
            .and_modify(|t| {
                t.n += 1;
                t.min_ms = t.min_ms.min(latency_ms);
                t.max_ms = t.max_ms.max(latency_ms);
            })
            .or_insert(Tally {
                n: 1,
                min_ms: latency_ms,
                max_ms: latency_ms,
            });
    }

    /// Add the counted groups to the table (inside the caller's transaction).
    pub async fn write(self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        let mut groups: Vec<_> = self
            .groups
            .iter()
            .flat_map(|(subscription, groups)| {
                groups
                    .iter()
                    .map(move |((minute, ok, class), t)| (subscription, *minute, *ok, *class, *t))
            })
            .collect();
        // One order for every writer: two workers logging the same subscription lock
        // its rows in the same sequence, so their upserts never deadlock on PostgreSQL.
        groups.sort_unstable_by(|a, b| (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)));
        for chunk in super::power_of_two_chunks(&groups, PER_STATEMENT) {
            let mut sql = String::from(COLUMNS);
            super::push_value_tuples(&mut sql, backend, chunk.len(), ARITY);
            let (least, greatest) = match backend {
                DbBackend::Postgres => ("LEAST", "GREATEST"),
                _ => ("MIN", "MAX"),
            };
            sql.push_str(&format!(
                " ON CONFLICT (subscription_uuid, minute, ok, class) DO UPDATE SET \
                 n = webhook_attempt_minutes.n + excluded.n, \
                 min_ms = {least}(webhook_attempt_minutes.min_ms, excluded.min_ms), \
                 max_ms = {greatest}(webhook_attempt_minutes.max_ms, excluded.max_ms)"
            ));
            let mut values = Vec::with_capacity(chunk.len() * ARITY);
            for (subscription, minute, ok, class, t) in chunk {
                values.extend([
                    Value::String(Some((*subscription).clone())),
                    Value::BigInt(Some(*minute)),
                    Value::Bool(Some(*ok)),
                    Value::Int(Some(*class)),
                    Value::BigInt(Some(t.n)),
                    Value::BigInt(Some(t.min_ms)),
                    Value::BigInt(Some(t.max_ms)),
                ]);
            }
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        Ok(())
    }
}

pub async fn delete_for_subscription(
    db: &impl ConnectionTrait,
    subscription: &str,
) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::SubscriptionUuid.eq(subscription))
        .exec(db)
        .await?;
    Ok(())
}

/// After the log lost every attempt before `before`: minutes wholly before it go, and
/// the minute `before` falls in is counted again from what the log still holds.
pub async fn sweep(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<(), DbErr> {
    let minute = before.timestamp().div_euclid(MINUTE) * MINUTE;
    Entity::delete_many()
        .filter(Column::Minute.lte(minute))
        .exec(db)
        .await?;
    let backend = db.get_database_backend();
    let start = DateTime::from_timestamp(minute, 0).unwrap_or(before);
    let sql = format!(
        "INSERT INTO webhook_attempt_minutes \
             (subscription_uuid, minute, ok, class, n, min_ms, max_ms) \
         SELECT subscription_uuid, $1, ok, {class} AS c, COUNT(*), \
                MIN(latency_ms), MAX(latency_ms) \
         FROM webhook_delivery_attempts \
         WHERE attempted_at >= $2 AND attempted_at < $3 \
         GROUP BY subscription_uuid, ok, c",
        class = latency_class_sql(),
    );
    let values: Vec<Value> = vec![
        minute.into(),
        start.into(),
        (start + chrono::Duration::seconds(MINUTE)).into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        super::stats::placeholders(backend, &sql),
        values,
    ))
    .await?;
    Ok(())
}
