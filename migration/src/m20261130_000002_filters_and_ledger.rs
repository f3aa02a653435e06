//! A content filter per subscription, and the ledger: what each worker did with the
//! events of each subscription, one row per (worker, subscription).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Subs::Table)
                    .add_column(text_null(Subs::Filter))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Ledger::Table)
                    .if_not_exists()
                    .col(string_len(Ledger::WorkerId, 64))
                    .col(string(Ledger::SubscriptionUuid))
                    .col(big_integer(Ledger::Received).default(0))
                    .col(big_integer(Ledger::Filtered).default(0))
                    .col(big_integer(Ledger::FilterErrors).default(0))
                    .col(big_integer(Ledger::Delivered).default(0))
                    .col(big_integer(Ledger::DeadLettered).default(0))
                    .col(text(Ledger::DeadLetteredByReason))
                    .col(big_integer(Ledger::Released).default(0))
                    .col(big_integer(Ledger::Queued).default(0))
                    .col(big_integer(Ledger::InFlight).default(0))
                    .col(timestamp_with_time_zone(Ledger::ReportedAt))
                    .primary_key(
                        Index::create()
                            .col(Ledger::WorkerId)
                            .col(Ledger::SubscriptionUuid),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_webhook_ledger_subscription")
                    .table(Ledger::Table)
                    .col(Ledger::SubscriptionUuid)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Ledger::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subs::Table)
                    .drop_column(Subs::Filter)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Subs {
    #[sea_orm(iden = "webhook_subscriptions")]
    Table,
    Filter,
}

#[derive(DeriveIden)]
enum Ledger {
    #[sea_orm(iden = "webhook_ledger")]
    Table,
    WorkerId,
    SubscriptionUuid,
    Received,
    Filtered,
    FilterErrors,
    Delivered,
    DeadLettered,
    DeadLetteredByReason,
    Released,
    Queued,
    InFlight,
    ReportedAt,
}
