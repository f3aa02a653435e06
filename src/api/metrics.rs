//! `GET /metrics`: the process-wide registry as Prometheus text, on the API listener
//! or on a listener of its own (`DECNET_METRICS_BIND`).

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, http::KeepAlive, web, App, HttpResponse, HttpServer};

use super::{
    allow::allow_only,
    connections::{set_backlog, BodyDeadline, DISCONNECT_TIMEOUT, METRICS_MAX_CONNECTIONS},
};
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

/// A server of `/metrics` alone, on its own listener (`DECNET_METRICS_BIND`), with
/// the API's request deadlines and answer headers, and a small bound on connections.
pub fn server(listener: TcpListener, request_timeout: Duration) -> std::io::Result<Server> {
    set_backlog(&listener)?;
    Ok(HttpServer::new(move || {
        App::new()
            .configure(configure)
            .default_service(web::to(HttpResponse::NotFound))
            // Any `Host`: a scraper names the address it was given.
            .wrap(actix_web::middleware::from_fn(|req, next| {
                super::edge::guard(Arc::from([]), req, next)
            }))
            .wrap(actix_web::middleware::NormalizePath::trim())
            .wrap(BodyDeadline(request_timeout))
    })
    .workers(1)
    .max_connections(METRICS_MAX_CONNECTIONS)
    .client_request_timeout(request_timeout)
    .client_disconnect_timeout(DISCONNECT_TIMEOUT)
    .keep_alive(KeepAlive::Disabled)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(1)
    .run())
}
