//! SeaORM entities of decnet-webhook.

pub mod user;
pub mod webhook_subscription;
