//! How the service authenticates to a subscription's receiver: static headers, an
//! `Authorization` scheme (bearer, basic, OAuth2 client credentials) and TLS material
//! (a private CA bundle, a client certificate and its key). Secret parts are stored
//! sealed like the signing secret.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subs::Table)
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
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

const COLUMNS: [Subs; 5] = [
    Subs::Headers,
    Subs::Auth,
    Subs::TlsCaPem,
    Subs::TlsClientCertPem,
    Subs::TlsClientKeyPem,
];

#[derive(DeriveIden, Clone, Copy)]
enum Subs {
    #[sea_orm(iden = "webhook_subscriptions")]
    Table,
    /// JSON list of `{"name", "value"}`, each value stored as the secret is.
    Headers,
    /// JSON object: the scheme and its fields, the secret ones stored as the secret is.
    Auth,
    TlsCaPem,
    TlsClientCertPem,
    /// Stored as the secret is.
    TlsClientKeyPem,
}
