//! SeaORM entities of decnet-webhook.

pub mod attempt_minute;
pub mod dead_letter;
pub mod delivery_attempt;
pub mod ledger;
pub mod meta;
pub mod user;
pub mod webhook_subscription;
