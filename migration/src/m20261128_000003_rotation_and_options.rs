//! Secret rotation, the per-subscription delivery options, and a small
//! key/value table for values the service keeps about itself (the secret-key check).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns = [
            text_null(Subs::PreviousSecret),
            timestamp_with_time_zone_null(Subs::SecretRotatedAt),
            timestamp_with_time_zone_null(Subs::PreviousSecretExpiresAt),
            boolean(Subs::Ordered).default(false).take(),
            integer_null(Subs::BatchMax),
            integer_null(Subs::BatchLingerMs),
            double_null(Subs::RateLimitPerSec),
            string_len(Subs::Shape, 16).default("raw").take(),
            text_null(Subs::Template),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Meta::Table)
                    .if_not_exists()
                    .col(string_len(Meta::Key, 64).primary_key())
                    .col(text(Meta::Value))
                    .col(timestamp_with_time_zone(Meta::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Meta::Table).to_owned())
            .await?;
        for column in [
            Subs::PreviousSecret,
            Subs::SecretRotatedAt,
            Subs::PreviousSecretExpiresAt,
            Subs::Ordered,
            Subs::BatchMax,
            Subs::BatchLingerMs,
            Subs::RateLimitPerSec,
            Subs::Shape,
            Subs::Template,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Subs {
    #[sea_orm(iden = "webhook_subscriptions")]
    Table,
    PreviousSecret,
    SecretRotatedAt,
    PreviousSecretExpiresAt,
    Ordered,
    BatchMax,
    BatchLingerMs,
    RateLimitPerSec,
    Shape,
    Template,
}

#[derive(DeriveIden)]
enum Meta {
    #[sea_orm(iden = "webhook_meta")]
    Table,
    Key,
    Value,
    UpdatedAt,
}
