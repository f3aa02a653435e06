//! What every API handler shares.

use std::sync::{atomic::AtomicBool, Arc};

use sea_orm::DatabaseConnection;

use super::{login_limits::LoginLimits, rate_limit::RateLimiter, webhooks::replays::Replays};
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
    /// Concurrent password checks and the back-off of failing logins (`DECNET_API_LOGIN_*`).
    pub login_limits: Arc<LoginLimits>,
    /// Subscriptions whose dead letters are being replayed.
    pub replays: Arc<Replays>,
    /// Seals and opens stored subscription secrets (`DECNET_SECRET_KEY`).
    pub secrets: crate::secrets::SecretStore,
    /// Compiles and trial-renders templates before they are stored.
    pub templates: crate::shape::sandbox::Sandbox,
    /// Set once a user has been seen: the first-run hint is over for good.
    pub users_exist: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        bus: Bus,
        jwt: JwtKeys,
        (secrets, templates): (crate::secrets::SecretStore, crate::shape::sandbox::Sandbox),
    ) -> Self {
        let create_limiter = Arc::new(RateLimiter::per_minute(settings.webhook.create_per_minute));
        let login_limits = Arc::new(LoginLimits::new(&settings.login));
        Self {
            db,
            settings,
            bus,
            jwt,
            create_limiter,
            login_limits,
            replays: Arc::default(),
            secrets,
            templates,
            users_exist: Arc::default(),
        }
    }
}
