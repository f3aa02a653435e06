//! `webhook_ledger`: each worker's account of each subscription's events, replaced
//! (not added to) on every report, so a report lost or repeated changes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::ledger::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    sea_query::{OnConflict, Query},
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;

/// What became of the events one worker (or all) took for one subscription. At
/// every instant `received = filtered + delivered + dead_lettered + released +
/// queued + in_flight`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Events that reached the subscription (undecodable input included).
    pub received: u64,
    /// Events its filter did not pass, or failed on; never queued.
    pub filtered: u64,
    /// Of `filtered`, the events the filter failed to evaluate on.
    pub filter_errors: u64,
    pub delivered: u64,
    /// Dead-lettered events in all (each event of a failed batch counts).
    pub dead_lettered: u64,
    /// Dead-lettered events by reason.
    pub dead_lettered_by_reason: BTreeMap<String, u64>,
    /// Left without an outcome here: handed back to the bus for redelivery
    /// (durable mode; the worker that takes it again counts it again), or dropped
    /// with the subscription when it was deleted or paused.
    pub released: u64,
    /// Waiting in the subscription's queue.
    pub queued: u64,
    /// Being shaped or delivered.
    pub in_flight: u64,
}

impl Counts {
    /// Whether the outcomes add up to what was received.
    pub fn balances(&self) -> bool {
        self.filtered
            + self.delivered
            + self.dead_lettered
            + self.released
            + self.queued
            + self.in_flight
            == self.received
    }

    /// Add `other` in.
    pub fn add(&mut self, other: &Counts) {
        self.received += other.received;
        self.filtered += other.filtered;
        self.filter_errors += other.filter_errors;
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        for (reason, n) in &other.dead_lettered_by_reason {
            *self
                .dead_lettered_by_reason
                .entry(reason.clone())
                .or_default() += n;
        }
        self.released += other.released;
        self.queued += other.queued;
        self.in_flight += other.in_flight;
    }

    fn from_row(row: &Model) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            received: n(row.received),
            filtered: n(row.filtered),
            filter_errors: n(row.filter_errors),
            delivered: n(row.delivered),
            dead_lettered: n(row.dead_lettered),
            // Written by this module only; an unreadable one counts as no detail.
            dead_lettered_by_reason: serde_json::from_str(&row.dead_lettered_by_reason)
                .unwrap_or_default(),
            released: n(row.released),
            queued: n(row.queued),
            in_flight: n(row.in_flight),
        }
    }
}

/// One worker's last report for one subscription.
#[derive(Clone, Debug)]
pub struct WorkerShare {
    pub worker_id: String,
    pub counts: Counts,
    pub reported_at: DateTime<Utc>,
}

/// Replace the rows of `worker_id` for these subscriptions.
pub async fn report(
    db: &DatabaseConnection,
    worker_id: &str,
    rows: &[(String, Counts)],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let models = rows.iter().map(|(uuid, c)| ActiveModel {
        worker_id: Set(worker_id.to_owned()),
        subscription_uuid: Set(uuid.clone()),
        received: Set(n(c.received)),
        filtered: Set(n(c.filtered)),
        filter_errors: Set(n(c.filter_errors)),
        delivered: Set(n(c.delivered)),
        dead_lettered: Set(n(c.dead_lettered)),
        dead_lettered_by_reason: Set(
            serde_json::to_string(&c.dead_lettered_by_reason).unwrap_or_else(|_| "{}".into())
        ),
        released: Set(n(c.released)),
        queued: Set(n(c.queued)),
        in_flight: Set(n(c.in_flight)),
        reported_at: Set(at),
    });
    Entity::insert_many(models)
        .on_conflict(
            OnConflict::columns([Column::WorkerId, Column::SubscriptionUuid])
                .update_columns([
                    Column::Received,
                    Column::Filtered,
                    Column::FilterErrors,
                    Column::Delivered,
                    Column::DeadLettered,
                    Column::DeadLetteredByReason,
                    Column::Released,
                    Column::Queued,
                    Column::InFlight,
                    Column::ReportedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await
        .map(|_| ())
}

/// Every worker's share of one subscription, the latest report first.
pub async fn shares(
    db: &DatabaseConnection,
    subscription: &str,
) -> Result<Vec<WorkerShare>, DbErr> {
    let rows = Entity::find()
        .filter(Column::SubscriptionUuid.eq(subscription))
        .order_by_desc(Column::ReportedAt)
        .order_by_asc(Column::WorkerId)
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .map(|row| WorkerShare {
            worker_id: row.worker_id.clone(),
            counts: Counts::from_row(row),
            reported_at: row.reported_at,
        })
        .collect())
}

pub async fn delete_for_subscription(
    db: &DatabaseConnection,
    subscription: &str,
) -> Result<u64, DbErr> {
    Entity::delete_many()
        .filter(Column::SubscriptionUuid.eq(subscription))
        .exec(db)
        .await
        .map(|r| r.rows_affected)
}

/// Delete the rows of subscriptions that no longer exist (a worker may report once
/// more after a subscription was deleted).
pub async fn sweep_orphans(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use entity::webhook_subscription as subs;
    Entity::delete_many()
        .filter(
            Column::SubscriptionUuid.not_in_subquery(
                Query::select()
                    .column(subs::Column::Uuid)
                    .from(subs::Entity)
                    .to_owned(),
            ),
        )
        .exec(db)
        .await
        .map(|r| r.rows_affected)
}
