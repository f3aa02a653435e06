use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeadLetters::Table)
                    .if_not_exists()
                    .col(string(DeadLetters::Uuid).primary_key())
                    .col(string(DeadLetters::SubscriptionUuid))
                    .col(text(DeadLetters::EventId))
                    .col(text(DeadLetters::Topic))
                    .col(blob(DeadLetters::Body))
                    .col(string_len(DeadLetters::Reason, 32))
                    .col(string_len_null(DeadLetters::Error, 512))
                    .col(integer_null(DeadLetters::Status))
                    .col(integer(DeadLetters::Attempts).default(0))
                    .col(timestamp_with_time_zone(DeadLetters::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_webhook_dead_letters_sub_created")
                    .table(DeadLetters::Table)
                    .col(DeadLetters::SubscriptionUuid)
                    .col(DeadLetters::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .if_not_exists()
                    .col(big_integer(Attempts::Id).primary_key().auto_increment())
                    .col(string(Attempts::SubscriptionUuid))
                    .col(text(Attempts::EventId))
                    .col(integer(Attempts::Attempt))
                    .col(timestamp_with_time_zone(Attempts::AttemptedAt))
                    .col(integer_null(Attempts::Status))
                    .col(integer(Attempts::LatencyMs))
                    .col(boolean(Attempts::Ok))
                    .col(string_len_null(Attempts::Error, 512))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_webhook_delivery_attempts_sub_time")
                    .table(Attempts::Table)
                    .col(Attempts::SubscriptionUuid)
                    .col(Attempts::AttemptedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Attempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeadLetters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DeadLetters {
    #[sea_orm(iden = "webhook_dead_letters")]
    Table,
    Uuid,
    SubscriptionUuid,
    EventId,
    Topic,
    Body,
    Reason,
    Error,
    Status,
    Attempts,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Attempts {
    #[sea_orm(iden = "webhook_delivery_attempts")]
    Table,
    Id,
    SubscriptionUuid,
    EventId,
    Attempt,
    AttemptedAt,
    Status,
    LatencyMs,
    Ok,
    Error,
}
