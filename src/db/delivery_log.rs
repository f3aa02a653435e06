//! `webhook_delivery_attempts` repository: the delivery log.

use chrono::{DateTime, Utc};
use entity::delivery_attempt::{Column, Entity, Model};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
};

use super::attempt_minutes::{self, Rollup};

/// One attempt as the worker logs it. The batch insert borrows the rows, so a
/// failed write keeps them for the next try without a copy.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub subscription: std::sync::Arc<str>,
    pub event_id: String,
    /// 1 for the first attempt of a delivery.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

const LOG_COLUMNS: &str = "INSERT INTO webhook_delivery_attempts \
    (subscription_uuid, event_id, attempt, attempted_at, status, latency_ms, ok, error) VALUES ";
const LOG_ARITY: usize = 8;

/// Attempts of one INSERT, at most (a power of two; see `power_of_two_chunks`).
const PER_STATEMENT: usize = 128;

/// Insert `rows`, and add them to the per-minute roll-ups, in one transaction (all or
/// none), in statements of at most `PER_STATEMENT` rows whose sizes are powers of two
/// (each connection caches a handful of statements, not one per batch size). The one
/// way attempts enter the log: the worker's journal, the API's replay, tests and the
/// benchmark all write through it.
pub async fn insert(db: &DatabaseConnection, rows: &[LogRow]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut rollup = Rollup::default();
    for row in rows {
        rollup.add(
            &row.subscription,
            row.at,
            row.error.is_none(),
            i64::from(row.latency_ms),
        );
    }
    let txn = db.begin().await?;
    for chunk in super::power_of_two_chunks(rows, PER_STATEMENT) {
        insert_rows(&txn, chunk).await?;
    }
    rollup.write(&txn).await?;
    txn.commit().await
}

/// Insert `rows` in one statement, written directly: the worker's batches skip the
/// query builder, whose per-value expressions cost more than the write. The values
/// are the same as the entity's, so both databases store them alike.
async fn insert_rows(db: &impl ConnectionTrait, rows: &[LogRow]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut sql = String::with_capacity(LOG_COLUMNS.len() + rows.len() * LOG_ARITY * 6);
    sql.push_str(LOG_COLUMNS);
    super::push_value_tuples(&mut sql, backend, rows.len(), LOG_ARITY);
    let mut values = Vec::with_capacity(rows.len() * LOG_ARITY);
    for row in rows {
        values.extend([
            Value::String(Some(row.subscription.to_string())),
            Value::String(Some(row.event_id.clone())),
            Value::Int(Some(row.attempt)),
            Value::ChronoDateTimeUtc(Some(row.at)),
            Value::Int(row.status),
            Value::Int(Some(row.latency_ms)),
            Value::Bool(Some(row.error.is_none())),
            Value::String(row.error.clone()),
        ]);
    }
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// Newest first; `ok` filters by outcome.
pub async fn list(
    db: &DatabaseConnection,
    subscription: &str,
    ok: Option<bool>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let mut query = Entity::find().filter(Column::SubscriptionUuid.eq(subscription));
    if let Some(ok) = ok {
        query = query.filter(Column::Ok.eq(ok));
    }
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(Column::AttemptedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Delete the subscription's attempts and their roll-ups.
pub async fn delete_for_subscription(
    db: &DatabaseConnection,
    subscription: &str,
) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let deleted = Entity::delete_many()
        .filter(Column::SubscriptionUuid.eq(subscription))
        .exec(&txn)
        .await?
        .rows_affected;
    attempt_minutes::delete_for_subscription(&txn, subscription).await?;
    txn.commit().await?;
    Ok(deleted)
}

/// Retention: delete attempts older than `before`, and roll-ups with them.
pub async fn sweep(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    let deleted = Entity::delete_many()
        .filter(Column::AttemptedAt.lt(before))
        .exec(&txn)
        .await?
        .rows_affected;
    attempt_minutes::sweep(&txn, before).await?;
    txn.commit().await?;
    Ok(deleted)
}
