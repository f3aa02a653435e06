//! `GET /healthz`: liveness.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::allow::allow_only;

/// The answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(allow_only("GET")),
    );
}

/// Liveness probe.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The API is up", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
