//! The admin HTTP API: one module per resource, each with `configure`.

pub mod allow;
pub mod auth;
pub mod body;
pub mod connections;
pub mod console;
pub mod edge;
pub mod first_run;
pub mod health;
pub mod login_limits;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod rate_limit;
pub mod state;
pub mod webhooks;

use actix_web::{web, HttpResponse};

use crate::error::AppError;
pub use state::AppState;

/// Register every route of the API, and a JSON 404 for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(openapi::configure)
        .configure(auth::configure)
        .configure(first_run::configure)
        .configure(webhooks::configure)
        .configure(console::configure)
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::not_found())
}
