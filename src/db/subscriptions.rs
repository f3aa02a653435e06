//! `webhook_subscriptions` repository, with the circuit breaker's atomic writes.

use chrono::{DateTime, Utc};
use entity::webhook_subscription::{self, ActiveModel, Column, Entity, Model};
use sea_orm::{
    sea_query::{Expr, ExprTrait, Query},
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::truncate_chars;

/// Longest `last_error` kept.
pub const MAX_ERROR_CHARS: usize = 512;

pub async fn list_all(db: &DatabaseConnection) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Uuid)
        .all(db)
        .await
}

pub async fn list_enabled(db: &DatabaseConnection) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Enabled.eq(true))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}

pub async fn get(db: &DatabaseConnection, uuid: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(uuid.to_owned()).one(db).await
}

pub async fn find_by_name(db: &DatabaseConnection, name: &str) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::Name.eq(name)).one(db).await
}

/// A new Active row: fresh uuid, no failures, created and updated now.
pub fn new_row(
    name: &str,
    url: &str,
    secret: &str,
    patterns: &[String],
    enabled: bool,
) -> ActiveModel {
    use chrono::SubsecRound;
    use sea_orm::Set;
    // Microseconds: what PostgreSQL keeps, so both backends answer the same.
    let now = chrono::Utc::now().trunc_subsecs(6);
    ActiveModel {
        uuid: Set(uuid::Uuid::new_v4().to_string()),
        name: Set(name.to_owned()),
        url: Set(url.to_owned()),
        secret: Set(secret.to_owned()),
        topic_patterns: Set(serde_json::json!(patterns)),
        enabled: Set(enabled),
        consecutive_failures: Set(0),
        last_success_at: Set(None),
        last_failure_at: Set(None),
        last_error: Set(None),
        auto_disabled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        previous_secret: Set(None),
        secret_rotated_at: Set(None),
        previous_secret_expires_at: Set(None),
        headers: Set(None),
        auth: Set(None),
        tls_ca_pem: Set(None),
        tls_client_cert_pem: Set(None),
        tls_client_key_pem: Set(None),
        ordered: Set(false),
        batch_max: Set(None),
        batch_linger_ms: Set(None),
        rate_limit_per_sec: Set(None),
        shape: Set("raw".to_owned()),
        template: Set(None),
        filter: Set(None),
        destination: Set(None),
        destination_secret: Set(None),
    }
}

pub async fn insert(db: &DatabaseConnection, row: ActiveModel) -> Result<Model, DbErr> {
    row.insert(db).await
}

/// Write only the columns set on `row` (and nothing at all when none are).
pub async fn update(db: &DatabaseConnection, row: ActiveModel) -> Result<Model, DbErr> {
    row.update(db).await
}

/// Returns whether a row was deleted.
pub async fn delete(db: &DatabaseConnection, uuid: &str) -> Result<bool, DbErr> {
    let res = Entity::delete_by_id(uuid.to_owned()).exec(db).await?;
    Ok(res.rows_affected > 0)
}

/// failures = 0, last_success_at = ts, last_error = null.
pub async fn record_webhook_success(
    db: &DatabaseConnection,
    uuid: &str,
    ts: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::ConsecutiveFailures, Expr::value(0))
        .col_expr(Column::LastSuccessAt, Expr::value(ts))
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
        .filter(Column::Uuid.eq(uuid))
        .exec(db)
        .await?;
    Ok(())
}

/// failures + 1 in one atomic statement, so concurrent workers never lose a count;
/// returns the new count (0 when the row is gone).
pub async fn record_webhook_failure(
    db: &DatabaseConnection,
    uuid: &str,
    ts: DateTime<Utc>,
    error: &str,
) -> Result<i32, DbErr> {
    let stmt = Query::update()
        .table(webhook_subscription::Entity)
        .value(
            Column::ConsecutiveFailures,
            Expr::col(Column::ConsecutiveFailures).add(1),
        )
        .value(Column::LastFailureAt, ts)
        .value(Column::LastError, truncate_chars(error, MAX_ERROR_CHARS))
        .and_where(Column::Uuid.eq(uuid))
        .returning_col(Column::ConsecutiveFailures)
        .to_owned();
    let row = db.query_one(&stmt).await?;
    match row {
        Some(row) => row.try_get::<i32>("", "consecutive_failures"),
        None => Ok(0),
    }
}

/// last_error = error, last_failure_at = ts, the failure count untouched: something
/// went wrong with the subscription that was not a delivery (the circuit does not
/// count it).
pub async fn record_webhook_problem(
    db: &DatabaseConnection,
    uuid: &str,
    ts: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastFailureAt, Expr::value(ts))
        .col_expr(
            Column::LastError,
            Expr::value(truncate_chars(error, MAX_ERROR_CHARS)),
        )
        .filter(Column::Uuid.eq(uuid))
        .exec(db)
        .await?;
    Ok(())
}

/// enabled = false, auto_disabled_at = ts; a second trip only re-stamps the time.
pub async fn trip_webhook_circuit(
    db: &DatabaseConnection,
    uuid: &str,
    ts: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Enabled, Expr::value(false))
        .col_expr(Column::AutoDisabledAt, Expr::value(ts))
        .filter(Column::Uuid.eq(uuid))
        .exec(db)
        .await?;
    Ok(())
}
