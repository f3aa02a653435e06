use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookSubscriptions::Table)
                    .if_not_exists()
                    .col(string(WebhookSubscriptions::Uuid).primary_key())
                    .col(string_len_uniq(WebhookSubscriptions::Name, 64))
                    .col(string_len(WebhookSubscriptions::Url, 2048))
                    .col(text(WebhookSubscriptions::Secret))
                    .col(json(WebhookSubscriptions::TopicPatterns))
                    .col(boolean(WebhookSubscriptions::Enabled).default(true))
                    .col(integer(WebhookSubscriptions::ConsecutiveFailures).default(0))
                    .col(timestamp_with_time_zone_null(
                        WebhookSubscriptions::LastSuccessAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        WebhookSubscriptions::LastFailureAt,
                    ))
                    .col(string_len_null(WebhookSubscriptions::LastError, 512))
                    .col(timestamp_with_time_zone_null(
                        WebhookSubscriptions::AutoDisabledAt,
                    ))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_webhook_subscriptions_enabled")
                    .table(WebhookSubscriptions::Table)
                    .col(WebhookSubscriptions::Enabled)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(string(Users::Uuid).primary_key())
                    .col(string_len_uniq(Users::Username, 64))
                    .col(text(Users::PasswordHash))
                    .col(string_len(Users::Role, 16))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookSubscriptions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookSubscriptions {
    Table,
    Uuid,
    Name,
    Url,
    Secret,
    TopicPatterns,
    Enabled,
    ConsecutiveFailures,
    LastSuccessAt,
    LastFailureAt,
    LastError,
    AutoDisabledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Uuid,
    Username,
    PasswordHash,
    Role,
    CreatedAt,
}
