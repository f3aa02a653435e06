//! Assemble the process from settings: connect the database (migrating it) and the
//! bus, check the secret key, build what the API and the worker share once, start
//! them, and run until a signal stops them.

use std::{net::TcpListener, sync::Arc};

use actix_web::{dev::Server, http::KeepAlive, web, App, HttpServer};
use sea_orm::DatabaseConnection;

use crate::{
    actors::{supervisor::Reload, Worker},
    api::{
        self,
        connections::{
            self, default_max_connections, default_workers, open_files_limit, BodyDeadline,
            DISCONNECT_TIMEOUT,
        },
        AppState,
    },
    auth::JwtKeys,
    bus::Bus,
    config::{ConfigError, Secret, Settings},
    delivery::{DeliveryClient, DeliverySettings},
    secrets::{check_key, KeyCheckError, SecretStore},
    shape::sandbox::{Sandbox, TemplateLimits},
};

/// Why a command could not start or stopped: configuration and usage problems (the
/// process exits 2), the rest (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
}

impl From<ConfigError> for StartupError {
    fn from(e: ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

/// Connect and migrate, or one clear line (the URL's password never printed).
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, StartupError> {
    Ok(connect_counting_migrations(settings).await?.0)
}

/// As [`connect`], also telling how many migrations were applied (the one-shot
/// commands say so in one line, and nothing else of the migrator).
pub async fn connect_counting_migrations(
    settings: &Settings,
) -> Result<(DatabaseConnection, usize), StartupError> {
    crate::db::connect_and_count_migrations(settings.database_url.expose())
        .await
        .map_err(|e| {
            StartupError::Runtime(format!(
                "database {} unavailable: {}",
                settings.database_url_redacted(),
                crate::error::redact_db_error(&e)
            ))
        })
}

/// Stop with one line (exit 2) when `DECNET_SECRET_KEY` does not fit the database.
pub async fn check_secret_key(
    db: &DatabaseConnection,
    secrets: &SecretStore,
) -> Result<(), StartupError> {
    match check_key(db, secrets).await {
        Ok(()) => Ok(()),
        Err(e @ KeyCheckError::Db(_)) => Err(StartupError::Runtime(e.to_string())),
        Err(e) => Err(StartupError::Usage(e.to_string())),
    }
}

/// What the API and the worker share, built once per process.
#[derive(Clone)]
pub struct Shared {
    /// Seals and opens stored secrets (`DECNET_SECRET_KEY`).
    pub secrets: SecretStore,
    /// How deliveries are made, by the worker and by the API's test ping and replay.
    pub delivery: DeliverySettings,
    /// Where templates compile and render: checked by the API on save, rendered by
    /// the worker.
    pub templates: Sandbox,
}

impl Shared {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            secrets: SecretStore::from_settings(settings),
            delivery: DeliverySettings::from_settings(&settings.webhook),
            templates: Sandbox::new(TemplateLimits::from_settings(&settings.webhook)),
        }
    }
}

/// The running HTTP API: its bound port and the server future to await.
pub struct ApiServer {
    pub port: u16,
    pub server: Server,
    /// Connections it keeps open at once.
    pub max_connections: usize,
}

/// Bind the API (port 0 picks a free port) and build the server; the caller awaits it.
pub fn build_api(
    settings: Arc<Settings>,
    db: DatabaseConnection,
    bus: Bus,
    jwt: JwtKeys,
    shared: Shared,
    listener: TcpListener,
) -> std::io::Result<ApiServer> {
    let port = listener.local_addr()?.port();
    connections::set_backlog(&listener)?;
    let max_connections = settings
        .api_max_connections
        .unwrap_or_else(|| default_max_connections(open_files_limit()));
    let (workers, per_worker) = connections::split(max_connections, default_workers());
    let request_timeout = settings.api_request_timeout;
    // Hash the dummy password now, so the first login of an unknown user costs the same.
    crate::auth::dummy_hash();
    let state = web::Data::new(AppState::new(
        db,
        settings,
        bus,
        jwt,
        (shared.secrets, shared.templates),
    ));
    let delivery = shared.delivery;
    // `/metrics` moves to its own listener when `DECNET_METRICS_BIND` is set.
    let metrics_here = state.settings.metrics_bind.is_none();
    let allowed_hosts: Arc<[String]> = state.settings.api_allowed_hosts.clone().into();
    let server = HttpServer::new(move || {
        let allowed_hosts = allowed_hosts.clone();
        App::new()
            .app_data(state.clone())
            // The client is not `Send`: one per worker thread, built on that thread.
            .app_data(web::Data::new(DeliveryClient::new(delivery.clone())))
            .configure(|cfg| {
                if metrics_here {
                    crate::api::metrics::configure(cfg)
                }
            })
            .configure(api::configure)
            .configure(crate::ui::configure)
            // Inside NormalizePath, so it sees `/healthz/` as `/healthz`.
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                api::edge::guard(allowed_hosts.clone(), req, next)
            }))
            // `/api/v1/webhooks/` and `/api/v1/webhooks` are the same resource.
            .wrap(actix_web::middleware::NormalizePath::trim())
            .wrap(BodyDeadline(request_timeout))
    })
    .workers(workers)
    .max_connections(per_worker)
    .client_request_timeout(request_timeout)
    .client_disconnect_timeout(DISCONNECT_TIMEOUT)
    .keep_alive(KeepAlive::Disabled)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    Ok(ApiServer {
        port,
        server,
        max_connections: workers * per_worker,
    })
}

/// Which parts a command runs.
#[derive(Clone, Copy, Debug)]
pub struct Components {
    pub api: bool,
    pub worker: bool,
}

/// Everything a command runs, built from settings.
pub struct Application {
    bus: Bus,
    api: Option<ApiServer>,
    /// `/metrics` on `DECNET_METRICS_BIND`.
    metrics: Option<ApiServer>,
    worker: Option<Worker>,
}

/// While no user exists, say in one line how to make the first admin and where the
/// page is: a first run otherwise meets a login form nobody can pass.
async fn first_run_hint(db: &DatabaseConnection, bind: std::net::SocketAddr, port: u16) {
    if !matches!(crate::db::users::any_exists(db).await, Ok(false)) {
        return;
    }
    tracing::warn!(
        "no user exists yet: create the first admin with `decnet user add admin --role admin`, \
         then sign in at {}",
        page_url(bind, port)
    );
}

/// Where a browser on this machine opens the page: a wildcard bind is reached on loopback.
pub fn page_url(bind: std::net::SocketAddr, port: u16) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let host = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", std::net::SocketAddr::new(host, port))
}

impl Application {
    /// Connect the database and the bus, bind the API, start the worker.
    /// `api_listener` overrides `DECNET_API_BIND` (tests bind port 0).
    pub async fn build(
        settings: Settings,
        components: Components,
        jwt_secret: Option<Secret>,
        api_listener: Option<TcpListener>,
    ) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let db = connect(&settings).await?;
        let shared = Shared::from_settings(&settings);
        // A wrong or missing key stops here, before anything is signed or written.
        check_secret_key(&db, &shared.secrets).await?;
        let bus = Bus::connect(&settings).await;
        for warning in connections::open_files_warnings(
            open_files_limit(),
            settings.api_max_connections.filter(|_| components.api),
        ) {
            tracing::warn!("{warning}");
        }
        let api = if components.api {
            let secret = jwt_secret
                .or_else(|| settings.jwt_secret.clone())
                .ok_or_else(|| {
                    StartupError::Usage(
                        "DECNET_JWT_SECRET is not set (the API needs a key of at least 32 bytes)"
                            .into(),
                    )
                })?;
            let jwt = JwtKeys::new(secret.expose().as_bytes(), settings.jwt_exp_minutes);
            let listener = match api_listener {
                Some(l) => l,
                None => TcpListener::bind(settings.api_bind).map_err(|e| {
                    StartupError::Runtime(format!("cannot listen on {}: {e}", settings.api_bind))
                })?,
            };
            let server = build_api(
                settings.clone(),
                db.clone(),
                bus.clone(),
                jwt,
                shared.clone(),
                listener,
            )
            .map_err(|e| StartupError::Runtime(format!("cannot start the API: {e}")))?;
            tracing::info!(
                port = server.port,
                max_connections = server.max_connections,
                "API listening"
            );
            first_run_hint(&db, settings.api_bind, server.port).await;
            Some(server)
        } else {
            None
        };
        let metrics = match settings.metrics_bind {
            Some(addr) => {
                let listener = TcpListener::bind(addr).map_err(|e| {
                    StartupError::Runtime(format!(
                        "cannot listen on {addr} (DECNET_METRICS_BIND): {e}"
                    ))
                })?;
                let port = listener.local_addr().map_or(addr.port(), |a| a.port());
                let server = crate::api::metrics::server(listener, settings.api_request_timeout)
                    .map_err(|e| StartupError::Runtime(format!("cannot serve metrics: {e}")))?;
                tracing::info!(port, "metrics listening on /metrics");
                Some(ApiServer {
                    port,
                    server,
                    max_connections: connections::METRICS_MAX_CONNECTIONS,
                })
            }
            None if !components.api => {
                tracing::info!("no /metrics endpoint: DECNET_METRICS_BIND is not set");
                None
            }
            None => None,
        };
        let worker = if components.worker {
            let Shared {
                secrets,
                delivery,
                templates,
            } = shared;
            let parts = (secrets, delivery, templates);
            Some(
                Worker::start(&settings, db.clone(), bus.clone(), parts)
                    .await
                    .map_err(|e| StartupError::Usage(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Self {
            bus,
            api,
            metrics,
            worker,
        })
    }

    pub fn api_port(&self) -> Option<u16> {
        self.api.as_ref().map(|a| a.port)
    }

    /// The port of `/metrics` on `DECNET_METRICS_BIND`, when that is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|m| m.port)
    }

    pub fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    /// Run until SIGTERM/SIGINT (or a stop on the bus); SIGHUP reloads subscriptions.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        use tokio::signal::unix::{signal, SignalKind};
        let failure =
            |e: std::io::Error| StartupError::Runtime(format!("cannot handle signals: {e}"));
        let hup = signal(SignalKind::hangup()).map_err(failure)?;
        let mut term = signal(SignalKind::terminate()).map_err(failure)?;
        let mut int = signal(SignalKind::interrupt()).map_err(failure)?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        };
        self.run(Some(hup), Box::pin(stop)).await
    }

    /// Run until `stop` completes (no signal handling; for embedding and tests).
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + 'static,
    ) -> Result<(), StartupError> {
        self.run(
            None,
            Box::pin(async move {
                stop.await;
                "stop requested"
            }),
        )
        .await
    }

    async fn run(
        mut self,
        mut hup: Option<tokio::signal::unix::Signal>,
        mut stop: std::pin::Pin<Box<dyn std::future::Future<Output = &'static str>>>,
    ) -> Result<(), StartupError> {
        let api_handle = self.api.as_ref().map(|a| a.server.handle());
        let api_task = self.api.take().map(|a| actix_rt::spawn(a.server));
        let metrics_handle = self.metrics.take().map(|m| {
            let handle = m.server.handle();
            actix_rt::spawn(m.server);
            handle
        });
        let mut api_done = Box::pin(async move {
            match api_task {
                Some(task) => task.await,
                None => std::future::pending().await,
            }
        });
        let bus_stop = self.worker.as_mut().and_then(|w| w.stop_requested.take());
        let mut bus_stop = Box::pin(async move {
            if let Some(mut rx) = bus_stop {
                if rx.recv().await.is_some() {
                    return;
                }
            }
            std::future::pending::<()>().await
        });
        let mut failed = None;
        let reason = loop {
            tokio::select! {
                Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    match &self.worker {
                        Some(w) => {
                            tracing::info!("SIGHUP: reloading subscriptions");
                            w.supervisor.do_send(Reload);
                        }
                        None => tracing::info!("SIGHUP: the API keeps no subscriptions; nothing to reload"),
                    }
                }
                reason = &mut stop => break reason,
                _ = &mut bus_stop => break "stop requested on the bus",
                res = &mut api_done => {
                    let error = match res {
                        Ok(Ok(())) => "the API server stopped".to_owned(),
                        Ok(Err(e)) => format!("the API server failed: {e}"),
                        Err(e) => format!("the API server failed: {e}"),
                    };
                    failed = Some(error);
                    break "API server stopped";
                }
            }
        };
        tracing::info!(reason, "stopping: finishing in-flight deliveries");
        let api_stopped = async {
            if let Some(h) = api_handle {
                h.stop(true).await;
            }
        };
        let worker_stopped = async {
            if let Some(w) = self.worker.take() {
                w.shutdown().await;
            }
        };
        futures::future::join(api_stopped, worker_stopped).await;
        // Last, so a scrape during the drain still answers.
        if let Some(h) = metrics_handle {
            h.stop(true).await;
        }
        self.bus.flush().await;
        tracing::info!("stopped");
        match failed {
            Some(e) => Err(StartupError::Runtime(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::page_url;

    #[test]
    fn the_page_url_is_one_a_browser_here_can_open() {
        let at = |bind: &str, port| page_url(bind.parse().unwrap(), port);
        assert_eq!(at("127.0.0.1:8000", 8000), "http://127.0.0.1:8000/");
        assert_eq!(at("0.0.0.0:8000", 8000), "http://127.0.0.1:8000/");
        assert_eq!(at("[::]:0", 41234), "http://[::1]:41234/");
        assert_eq!(at("10.1.2.3:80", 80), "http://10.1.2.3:80/");
    }
}
