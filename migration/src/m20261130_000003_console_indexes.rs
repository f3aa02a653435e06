//! Indexes for the console's aggregates (`GET /api/v1/webhooks/{uuid}/stats` and the
//! page header's recent rate).
//!
//! The delivery log's (subscription, time) index becomes (subscription, time, ok,
//! latency): the same prefix serves the listing, and the statistics read every
//! column they need from the index alone, without a table lookup per row. Time-only
//! indexes serve the all-subscriptions rate of the last minutes (and the retention
//! sweeps, which scanned the whole table before).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD_LOG_INDEX: &str = "ix_webhook_delivery_attempts_sub_time";
const LOG_INDEX: &str = "ix_webhook_delivery_attempts_sub_time_ok_latency";
const LOG_TIME_INDEX: &str = "ix_webhook_delivery_attempts_time";
const DEAD_LETTER_TIME_INDEX: &str = "ix_webhook_dead_letters_created";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(LOG_INDEX)
                    .table(Attempts::Table)
                    .col(Attempts::SubscriptionUuid)
                    .col(Attempts::AttemptedAt)
                    .col(Attempts::Ok)
                    .col(Attempts::LatencyMs)
                    .to_owned(),
            )
            .await?;
        // Its prefix is the new index: keeping both would only cost every insert.
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name(OLD_LOG_INDEX)
                    .table(Attempts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(LOG_TIME_INDEX)
                    .table(Attempts::Table)
                    .col(Attempts::AttemptedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(DEAD_LETTER_TIME_INDEX)
                    .table(DeadLetters::Table)
                    .col(DeadLetters::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (DEAD_LETTER_TIME_INDEX, "webhook_dead_letters"),
            (LOG_TIME_INDEX, "webhook_delivery_attempts"),
            (LOG_INDEX, "webhook_delivery_attempts"),
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .if_exists()
                        .name(name)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(OLD_LOG_INDEX)
                    .table(Attempts::Table)
                    .col(Attempts::SubscriptionUuid)
                    .col(Attempts::AttemptedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Attempts {
    #[sea_orm(iden = "webhook_delivery_attempts")]
    Table,
    SubscriptionUuid,
    AttemptedAt,
    Ok,
    LatencyMs,
}

#[derive(DeriveIden)]
enum DeadLetters {
    #[sea_orm(iden = "webhook_dead_letters")]
    Table,
    CreatedAt,
}
