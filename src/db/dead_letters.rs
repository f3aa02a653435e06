//! `webhook_dead_letters` repository.

use chrono::{DateTime, Utc};
use entity::dead_letter::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

pub use entity::dead_letter::Model as StoredDeadLetter;

/// Why a delivery was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    RetriesExhausted,
    NonRetryable,
    QueueOverflow,
    CircuitTripped,
    Undecodable,
    Shutdown,
    /// The subscription's shape could not render the event.
    RenderFailed,
    /// The last attempt failed for lack of a local resource (descriptors, memory, …),
    /// not because of the receiver.
    LocalFailure,
    /// The subscription stopped unexpectedly while it held the event.
    Crashed,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Self::RetriesExhausted,
        Self::NonRetryable,
        Self::QueueOverflow,
        Self::CircuitTripped,
        Self::Undecodable,
        Self::Shutdown,
        Self::RenderFailed,
        Self::LocalFailure,
        Self::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetriesExhausted => "retries_exhausted",
            Self::NonRetryable => "non_retryable",
            Self::QueueOverflow => "queue_overflow",
            Self::CircuitTripped => "circuit_tripped",
            Self::Undecodable => "undecodable",
            Self::Shutdown => "shutdown",
            Self::RenderFailed => "render_failed",
            Self::LocalFailure => "local_failure",
            Self::Crashed => "crashed",
        }
    }
}

/// A row to insert (plain data, cheap to keep while the database is away).
#[derive(Clone, Debug)]
pub struct NewDeadLetter {
    pub uuid: String,
    pub subscription_uuid: String,
    pub event_id: String,
    pub topic: String,
    pub body: Vec<u8>,
    pub reason: String,
    pub error: Option<String>,
    pub status: Option<i32>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

impl NewDeadLetter {
    pub fn into_active(self) -> ActiveModel {
        use sea_orm::Set;
        ActiveModel {
            uuid: Set(self.uuid),
            subscription_uuid: Set(self.subscription_uuid),
            event_id: Set(self.event_id),
            topic: Set(self.topic),
            body: Set(self.body),
            reason: Set(self.reason),
            error: Set(self.error),
            status: Set(self.status),
            attempts: Set(self.attempts),
            created_at: Set(self.created_at),
        }
    }
}

/// Insert many at once (the worker batches them).
pub async fn insert_many(db: &DatabaseConnection, rows: Vec<ActiveModel>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    // No RETURNING: nothing reads the new ids back.
    Entity::insert_many(rows).exec_without_returning(db).await?;
    Ok(())
}

/// Newest first, `limit` from `offset`.
pub async fn list(
    db: &DatabaseConnection,
    subscription: &str,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    let query = Entity::find().filter(Column::SubscriptionUuid.eq(subscription));
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Uuid)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Oldest first (replay order), since `since` (inclusive).
pub async fn since(
    db: &DatabaseConnection,
    subscription: &str,
    since: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().filter(Column::SubscriptionUuid.eq(subscription));
    if let Some(ts) = since {
        query = query.filter(Column::CreatedAt.gte(ts));
    }
    query
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Uuid)
        .limit(limit)
        .all(db)
        .await
}

/// Entries of `subscription` created at or after `since` (all when `None`).
fn in_range(subscription: &str, since: Option<DateTime<Utc>>) -> Select<Entity> {
    let query = Entity::find().filter(Column::SubscriptionUuid.eq(subscription));
    match since {
        Some(ts) => query.filter(Column::CreatedAt.gte(ts)),
        None => query,
    }
}

/// What a replay re-delivers, oldest first: everything in range except undecodable
/// input, which has no envelope to send.
pub async fn replayable(
    db: &DatabaseConnection,
    subscription: &str,
    since: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    in_range(subscription, since)
        .filter(Column::Reason.ne(Reason::Undecodable.as_str()))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Uuid)
        .limit(limit)
        .all(db)
        .await
}

/// The subscription's entry `uuid`, unless it is undecodable input.
pub async fn replayable_one(
    db: &DatabaseConnection,
    subscription: &str,
    uuid: &str,
) -> Result<Option<Model>, DbErr> {
    in_range(subscription, None)
        .filter(Column::Uuid.eq(uuid))
        .filter(Column::Reason.ne(Reason::Undecodable.as_str()))
        .one(db)
        .await
}

/// Entries in range: (replayable, undecodable).
pub async fn count_replayable(
    db: &DatabaseConnection,
    subscription: &str,
    since: Option<DateTime<Utc>>,
) -> Result<(u64, u64), DbErr> {
    let undecodable = Reason::Undecodable.as_str();
    let replayable = in_range(subscription, since)
        .filter(Column::Reason.ne(undecodable))
        .count(db)
        .await?;
    let undecodable = in_range(subscription, since)
        .filter(Column::Reason.eq(undecodable))
        .count(db)
        .await?;
    Ok((replayable, undecodable))
}

pub async fn delete(db: &DatabaseConnection, uuid: &str) -> Result<bool, DbErr> {
    Ok(Entity::delete_by_id(uuid.to_owned())
        .exec(db)
        .await?
        .rows_affected
        > 0)
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

/// Retention: delete entries older than `before`.
pub async fn sweep(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Entity::delete_many()
        .filter(Column::CreatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
