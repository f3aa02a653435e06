//! The admin HTTP API (SPEC §4): one module per resource, each with `configure`.

pub mod auth;
pub mod body;
pub mod openapi;
pub mod query;
pub mod rate_limit;
pub mod webhooks;

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use sea_orm::DatabaseConnection;

use crate::{auth::JwtKeys, bus::Bus, config::Settings, error::AppError};
use rate_limit::RateLimiter;
use webhooks::replay::Replays;

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
}

impl AppState {
    pub fn new(db: DatabaseConnection, settings: Arc<Settings>, bus: Bus, jwt: JwtKeys) -> Self {
        let create_limiter = Arc::new(RateLimiter::per_minute(settings.webhook.create_per_minute));
        Self {
            db,
            settings,
            bus,
            jwt,
            create_limiter,
            replays: Arc::default(),
        }
    }
}

/// Register every route of the API, and a JSON 404 for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .configure(openapi::configure)
        .configure(auth::configure)
        .configure(webhooks::configure)
        .default_service(web::to(not_found));
}

/// Liveness probe.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The API is up", body = openapi::Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::not_found())
}

/// The answer of a known path asked with a method it does not serve.
pub(crate) async fn method_not_allowed() -> Result<HttpResponse, AppError> {
    Err(AppError::MethodNotAllowed)
}
