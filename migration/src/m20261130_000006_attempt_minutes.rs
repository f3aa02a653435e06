//! Per-minute roll-ups of the delivery log, kept beside it: attempts per
//! (subscription, minute, outcome, latency class), with the least and greatest
//! latency of each. The console's charts read a day from these instead of from every
//! attempt. The rows already logged are rolled up here once.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const MINUTE_INDEX: &str = "ix_webhook_attempt_minutes_minute";

/// The latency classes' upper bounds (ms) as they were when this table was made: the
/// rows rolled up here use them, and so must every later writer.
const LATENCY_CLASSES: [i64; 28] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000,
];

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Minutes::Table)
                    .if_not_exists()
                    .col(string(Minutes::SubscriptionUuid))
                    .col(big_integer(Minutes::Minute))
                    .col(boolean(Minutes::Ok))
                    .col(integer(Minutes::Class))
                    .col(big_integer(Minutes::N))
                    .col(big_integer(Minutes::MinMs))
                    .col(big_integer(Minutes::MaxMs))
                    .primary_key(
                        Index::create()
                            .col(Minutes::SubscriptionUuid)
                            .col(Minutes::Minute)
                            .col(Minutes::Ok)
                            .col(Minutes::Class),
                    )
                    .to_owned(),
            )
            .await?;
        // The all-subscriptions charts and the retention sweep read by time alone.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(MINUTE_INDEX)
                    .table(Minutes::Table)
                    .col(Minutes::Minute)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let minute = match backend {
            DbBackend::Postgres => {
                "CAST(FLOOR(EXTRACT(EPOCH FROM attempted_at) / 60) AS BIGINT) * 60"
            }
            _ => "(CAST(strftime('%s', attempted_at) AS BIGINT) / 60) * 60",
        };
        let mut class = String::from("CASE");
        for (i, bound) in LATENCY_CLASSES.iter().enumerate() {
            class.push_str(&format!(" WHEN latency_ms <= {bound} THEN {i}"));
        }
        class.push_str(&format!(" ELSE {} END", LATENCY_CLASSES.len()));
        let sql = format!(
            "INSERT INTO webhook_attempt_minutes \
                 (subscription_uuid, minute, ok, class, n, min_ms, max_ms) \
             SELECT subscription_uuid, {minute} AS m, ok, {class} AS c, COUNT(*), \
                    MIN(latency_ms), MAX(latency_ms) \
             FROM webhook_delivery_attempts \
             GROUP BY subscription_uuid, m, ok, c"
        );
        db.execute_raw(Statement::from_string(backend, sql)).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Minutes::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Minutes {
    #[sea_orm(iden = "webhook_attempt_minutes")]
    Table,
    SubscriptionUuid,
    Minute,
    Ok,
    Class,
    N,
    MinMs,
    MaxMs,
}
