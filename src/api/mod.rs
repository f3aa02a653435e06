//! The admin HTTP API (SPEC §4): one module per resource, each with `configure`.

pub mod auth;
pub mod body;
pub mod openapi;
pub mod query;
pub mod rate_limit;
pub mod webhooks;

use std::sync::Arc;

use actix_web::{
    http::header::{HeaderValue, ALLOW},
    web, HttpResponse, ResponseError,
};
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
    /// Seals and opens stored subscription secrets (`DECNET_SECRET_KEY`).
    pub secrets: crate::secrets::SecretStore,
    /// Compiles and trial-renders templates before they are stored.
    pub templates: crate::shape::sandbox::Sandbox,
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
        Self {
            db,
            settings,
            bus,
            jwt,
            create_limiter,
            replays: Arc::default(),
            secrets,
            templates,
        }
    }
}

/// Register every route of the API, and a JSON 404 for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(allow_only("GET")),
    )
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

/// The default service of an API resource: 405 with the `Allow` header RFC 9110
/// requires, naming the methods the resource serves (e.g. `"GET, POST"`).
pub(crate) fn allow_only(methods: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut response = AppError::MethodNotAllowed.error_response();
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(methods));
        response
    })
}
