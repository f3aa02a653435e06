//! `webhook_delivery_attempts` repository: the delivery log.

use chrono::{DateTime, Utc};
use entity::delivery_attempt::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
};

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

/// Insert `rows` in one transaction (all or none), in statements of at most
/// `per_statement` rows whose sizes are powers of two: each connection prepares and
/// caches a statement per distinct text, and a batch of any size then reuses one per
/// power of two up to `per_statement` instead of caching one more per batch size.
pub async fn insert_batches(
    db: &DatabaseConnection,
    rows: &[LogRow],
    per_statement: usize,
) -> Result<(), DbErr> {
    let largest = prev_power_of_two(per_statement.max(1));
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = prev_power_of_two(rest.len()).min(largest);
        let (chunk, after) = rest.split_at(size);
        chunks.push(chunk);
        rest = after;
    }
    match chunks.as_slice() {
        [] => Ok(()),
        [one] => insert_rows(db, one).await,
        many => {
            let txn = db.begin().await?;
            for chunk in many {
                insert_rows(&txn, chunk).await?;
            }
            txn.commit().await
        }
    }
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Insert `rows` in one statement, written directly: the worker's batches skip the
/// query builder, whose per-value expressions cost more than the write. The values
/// are the same as the entity's, so both databases store them alike.
pub async fn insert_rows(db: &impl ConnectionTrait, rows: &[LogRow]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let mut sql = String::with_capacity(LOG_COLUMNS.len() + rows.len() * LOG_ARITY * 6);
    sql.push_str(LOG_COLUMNS);
    let mut values = Vec::with_capacity(rows.len() * LOG_ARITY);
    for (i, row) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for k in 0..LOG_ARITY {
            if k > 0 {
                sql.push(',');
            }
            match backend {
                DbBackend::Postgres => {
                    use std::fmt::Write as _;
                    let _ = write!(sql, "${}", i * LOG_ARITY + k + 1);
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
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

/// Insert a batch in one statement.
pub async fn insert_many(db: &DatabaseConnection, rows: Vec<ActiveModel>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    // No RETURNING: nothing reads the new ids back.
    Entity::insert_many(rows).exec_without_returning(db).await?;
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

pub async fn delete_for_subscription(
    db: &DatabaseConnection,
    subscription: &str,
) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::SubscriptionUuid.eq(subscription))
        .exec(db)
        .await?
        .rows_affected)
}

/// Retention: delete attempts older than `before`.
pub async fn sweep(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::AttemptedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    #[test]
    fn statement_sizes_are_powers_of_two() {
        assert_eq!(super::prev_power_of_two(1), 1);
        assert_eq!(super::prev_power_of_two(137), 128);
        assert_eq!(super::prev_power_of_two(512), 512);
        assert_eq!(super::prev_power_of_two(1000), 512);
    }
}
