//! `webhook_delivery_attempts` repository: the delivery log.

use chrono::{DateTime, Utc};
use entity::delivery_attempt::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

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
