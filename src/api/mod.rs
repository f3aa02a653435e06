//! The admin HTTP API (SPEC §4): one module per resource, each with `configure`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use sea_orm::DatabaseConnection;

use crate::{auth::JwtKeys, bus::Bus, config::Settings};

/// Shared by every API worker thread.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub bus: Bus,
    pub jwt: JwtKeys,
}

/// Register every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
