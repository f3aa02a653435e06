//! Settings of the destination shapes (Splunk HEC, Elasticsearch, Sentinel,
//! PagerDuty): the non-secret ones as a JSON object, and a sealed secret (PagerDuty's
//! routing key) stored as the signing secret is.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns = [
            json_null(Subs::Destination),
            text_null(Subs::DestinationSecret),
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Subs::Destination, Subs::DestinationSecret] {
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
    Destination,
    DestinationSecret,
}
