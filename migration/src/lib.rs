//! Schema migrations, run on every start (idempotent).

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_tables;
mod m20261128_000002_dead_letters_and_log;
mod m20261128_000003_rotation_and_options;
mod m20261128_000004_user_token_version;
mod m20261130_000001_receiver_auth;
mod m20261130_000002_filters_and_ledger;
mod m20261130_000003_console_indexes;
mod m20261130_000005_destinations;
mod m20261130_000006_attempt_minutes;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_tables::Migration),
            Box::new(m20261128_000002_dead_letters_and_log::Migration),
            Box::new(m20261128_000003_rotation_and_options::Migration),
            Box::new(m20261128_000004_user_token_version::Migration),
            Box::new(m20261130_000001_receiver_auth::Migration),
            Box::new(m20261130_000002_filters_and_ledger::Migration),
            Box::new(m20261130_000003_console_indexes::Migration),
            Box::new(m20261130_000005_destinations::Migration),
            Box::new(m20261130_000006_attempt_minutes::Migration),
        ]
    }
}
