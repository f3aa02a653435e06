//! `GET /metrics`: the process-wide registry as Prometheus text, on the API listener
//! or on a listener of its own (`DECNET_METRICS_BIND`).

use std::net::TcpListener;

use actix_web::{dev::Server, web, App, HttpResponse, HttpServer};

use super::allow::allow_only;
use crate::metrics::global;

/// `GET /metrics` (no authentication: it tells counts, never URLs or secrets).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(scrape))
            .default_service(allow_only("GET")),
    );
}

async fn scrape() -> HttpResponse {
    match global().render() {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// A server of `/metrics` alone, on its own listener (`DECNET_METRICS_BIND`).
pub fn server(listener: TcpListener) -> std::io::Result<Server> {
    Ok(HttpServer::new(|| {
        App::new()
            .configure(configure)
            .default_service(web::to(HttpResponse::NotFound))
            .wrap(actix_web::middleware::NormalizePath::trim())
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(1)
    .run())
}
