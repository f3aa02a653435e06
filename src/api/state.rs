//! What every API handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::{rate_limit::RateLimiter, webhooks::replays::Replays};
use crate::{auth::JwtKeys, bus::Bus, config::Settings};

/// Shared by every API worker thread.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub bus: Bus,
    pub jwt: JwtKeys,
    /// Subscription creates per user (`DECNET_WEBHOOK_CREATE_PER_MINUTE`).
    pub create_limiter: Arc<RateLimiter>,
    /// Subscriptions whose dead letters are being replayed.
    pub replays: Arc<Replays>,
    /// Seals and opens stored subscription secrets (`DECNET_SECRET_KEY`).
    pub secrets: crate::secrets::SecretStore,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        bus: Bus,
        jwt: JwtKeys,
        secrets: crate::secrets::SecretStore,
    ) -> Self {
        let create_limiter = Arc::new(RateLimiter::per_minute(settings.webhook.create_per_minute));
        Self {
            db,
            settings,
            bus,
            jwt,
            create_limiter,
            replays: Arc::default(),
            secrets,
        }
    }
}
