//! Build the application from settings and run it until a signal stops it.

use std::{net::TcpListener, sync::Arc};

use actix_web::{dev::Server, web, App, HttpServer};
use sea_orm::DatabaseConnection;

use crate::{
    api::{self, AppState},
    auth::JwtKeys,
    bus::Bus,
    config::Settings,
};

/// The running HTTP API: its bound port and the server future to await.
pub struct ApiServer {
    pub port: u16,
    pub server: Server,
}

/// Bind the API (port 0 picks a free port) and build the server; the caller awaits it.
pub fn build_api(
    settings: Arc<Settings>,
    db: DatabaseConnection,
    bus: Bus,
    jwt: JwtKeys,
    listener: TcpListener,
) -> std::io::Result<ApiServer> {
    let port = listener.local_addr()?.port();
    // Hash the dummy password now, so the first login of an unknown user costs the same.
    crate::auth::dummy_hash();
    let state = web::Data::new(AppState::new(db, settings, bus, jwt));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(api::configure)
            // `/api/v1/webhooks/` and `/api/v1/webhooks` are the same resource.
            .wrap(actix_web::middleware::NormalizePath::trim())
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    Ok(ApiServer { port, server })
}
