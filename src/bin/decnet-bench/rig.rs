//! What every worker scenario stands on: a private nats-server, a temporary SQLite
//! database, subscription rows, and the real worker built by `Application::build`.

use std::{
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::Addr;
use decnet_webhook::{
    actors::{
        supervisor::{GetStatus, Reload, Status, SupervisorActor},
        WorkerStats,
    },
    config::Settings,
    startup::{Application, Components},
};
use entity::webhook_subscription::{ActiveModel, Entity};
use sea_orm::{DatabaseConnection, EntityTrait, Set, TransactionTrait};
use tokio::sync::oneshot;

use super::{
    nats::NatsServer,
    receiver::{Ledger, Tally},
    report::BenchError,
};

/// The signing secret of every bench subscription.
const SECRET: &str = "a-bench-secret-of-32-characters!";
/// Rows per INSERT (SQLite allows 32,766 bound values; a row binds 22).
const INSERT_CHUNK: usize = 500;

/// A subscription row to create.
pub struct Sub {
    pub url: String,
    pub patterns: Vec<String>,
}

pub struct Rig {
    /// The settings as given, to start a worker in another process.
    pairs: Vec<(String, String)>,
    /// The bus the rig started (none when it runs on servers started elsewhere).
    _nats: Option<NatsServer>,
    /// Every bus server, comma-separated.
    url: String,
    pub db: DatabaseConnection,
    pub settings: Settings,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// nats-server and a migrated database; `extra` settings override the defaults.
    pub async fn new(extra: &[(&str, &str)]) -> Result<Self, BenchError> {
        let nats = NatsServer::try_start(false).map_err(BenchError)?;
        Self::on(nats.url(), Some(nats), extra).await
    }

    /// The same with the worker in durable mode, on a nats-server with JetStream
    /// whose stream captures `subjects`.
    pub async fn durable(subjects: &str, extra: &[(&str, &str)]) -> Result<Self, BenchError> {
        let mut pairs = vec![
            ("webhook_durable", "true"),
            ("webhook_stream_subjects", subjects),
        ];
        pairs.extend_from_slice(extra);
        let nats = NatsServer::try_start(true).map_err(BenchError)?;
        Self::on(nats.url(), Some(nats), &pairs).await
    }

    /// A database and settings for workers on the bus servers `url` (comma-separated),
    /// started by the caller.
    pub async fn on_servers(url: String, extra: &[(&str, &str)]) -> Result<Self, BenchError> {
        Self::on(url, None, extra).await
    }

    /// Every bus server, comma-separated.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    async fn on(
        url: String,
        nats: Option<NatsServer>,
        extra: &[(&str, &str)],
    ) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir().map_err(|e| BenchError::setup("temporary dir", e))?;
        let db_url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        let mut pairs = vec![
            ("database_url".to_owned(), db_url.clone()),
            ("nats_url".to_owned(), url.clone()),
            // The receivers are on loopback, which the SSRF guard refuses otherwise.
            ("webhook_allow_private".to_owned(), "true".to_owned()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = Settings::from_pairs(pairs.clone())
            .map_err(|e| BenchError::setup("bench settings", e))?;
        let db = decnet_webhook::db::connect_and_migrate(&db_url)
            .await
            .map_err(|e| BenchError::setup("bench database", e))?;
        Ok(Self {
            pairs,
            _nats: nats,
            url,
            db,
            settings,
            _dir: dir,
        })
    }

    /// Insert enabled subscriptions in a few statements; returns their uuids in order.
    pub async fn insert(&self, subs: &[Sub]) -> Result<Vec<String>, BenchError> {
        let fail = |e| BenchError::setup("insert subscriptions", e);
        let txn = self.db.begin().await.map_err(fail)?;
        let mut uuids = Vec::with_capacity(subs.len());
        for chunk in subs.chunks(INSERT_CHUNK) {
            let rows: Vec<ActiveModel> = chunk
                .iter()
                .map(|sub| {
                    let uuid = uuid::Uuid::new_v4().to_string();
                    uuids.push(uuid.clone());
                    let mut row = decnet_webhook::db::subscriptions::new_row(
                        &format!("bench-{uuid}"),
                        &sub.url,
                        SECRET,
                        &sub.patterns,
                        true,
                    );
                    row.uuid = Set(uuid);
                    row
                })
                .collect();
            Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await
                .map_err(fail)?;
        }
        txn.commit().await.map_err(fail)?;
        Ok(uuids)
    }

    /// Build and run the worker exactly as `decnet webhook` does.
    pub async fn start_worker(&self) -> Result<RunningWorker, BenchError> {
        let app = Application::build(
            self.settings.clone(),
            Components {
                api: false,
                worker: true,
            },
            None,
            None,
        )
        .await
        .map_err(|e| BenchError::setup("worker build", e))?;
        let worker = app
            .worker()
            .ok_or_else(|| BenchError("the application started no worker".into()))?;
        let supervisor = worker.supervisor.clone();
        let stats = worker.stats.clone();
        let (stop, rx) = oneshot::channel::<()>();
        let done = actix_rt::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Ok(RunningWorker {
            supervisor,
            stats,
            stop: Some(stop),
            done,
        })
    }
}

/// The argument that makes `decnet-bench` a worker process of its own.
pub const WORKER_CHILD: &str = "worker-child";

impl Rig {
    /// The worker in a process of its own (this executable as [`worker_child`]), to
    /// be killed with SIGKILL.
    pub fn spawn_child_worker(&self) -> Result<ChildWorker, BenchError> {
        let exe = std::env::current_exe().map_err(|e| BenchError::setup("own executable", e))?;
        let child = std::process::Command::new(exe)
            .arg(WORKER_CHILD)
            .args(self.pairs.iter().map(|(k, v)| format!("{k}={v}")))
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| BenchError::setup("worker process", e))?;
        Ok(ChildWorker(child))
    }
}

/// A worker process; killed (SIGKILL) when dropped.
pub struct ChildWorker(std::process::Child);

impl ChildWorker {
    /// Its process id (to read its CPU time and memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `decnet-bench worker-child key=value…`: run the worker on these settings until
/// killed.
pub fn worker_child(args: impl Iterator<Item = String>) -> std::process::ExitCode {
    let pairs: Vec<(String, String)> = args
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let settings = match Settings::from_pairs(pairs) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{WORKER_CHILD}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let system = actix_rt::System::new();
    system.block_on(async move {
        let components = Components {
            api: false,
            worker: true,
        };
        match Application::build(settings, components, None, None).await {
            Ok(app) => {
                let _ = app.run_until(std::future::pending::<()>()).await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{WORKER_CHILD}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

pub struct RunningWorker {
    pub supervisor: Addr<SupervisorActor>,
    pub stats: Arc<WorkerStats>,
    stop: Option<oneshot::Sender<()>>,
    done: actix_rt::task::JoinHandle<Result<(), decnet_webhook::startup::StartupError>>,
}

impl RunningWorker {
    pub async fn status(&self) -> Result<Status, BenchError> {
        self.supervisor
            .send(GetStatus)
            .await
            .map_err(|e| BenchError::setup("supervisor status", e))
    }

    /// Wait until `n` subscriptions are subscribed and none is starting; returns the
    /// status then.
    pub async fn wait_ready(
        &self,
        n: usize,
        within: Duration,
        poll: Duration,
    ) -> Result<Status, BenchError> {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status().await?;
            if status.running.len() == n && status.starting == 0 {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(BenchError(format!(
                    "worker not ready after {within:?}: {} running, {} starting, {n} wanted",
                    status.running.len(),
                    status.starting
                )));
            }
            actix_rt::time::sleep(poll).await;
        }
    }

    /// Ask for a reload (as SIGHUP does) and wait until it has been applied.
    pub async fn reload(&self, within: Duration, poll: Duration) -> Result<Status, BenchError> {
        let before = self.status().await?.reloads;
        self.supervisor.do_send(Reload);
        let deadline = Instant::now() + within;
        loop {
            let status = self.status().await?;
            if status.reloads > before {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(BenchError(format!("reload not applied after {within:?}")));
            }
            actix_rt::time::sleep(poll).await;
        }
    }

    pub fn overflow(&self) -> u64 {
        self.stats
            .overflow
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Deliveries that failed for good (every attempt spent).
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stop gracefully, waiting at most `within` (a blackholed delivery in flight
    /// would hold the drain for the whole delivery timeout).
    pub async fn stop(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(within, &mut self.done).await.is_err() {
            self.done.abort();
        }
    }
}

/// Wait until every slot of `routes` × `seqs` has arrived, or until nothing new
/// arrived for `stall`; then a short grace period so late duplicates are counted.
pub async fn settle(
    ledger: &Ledger,
    routes: Range<usize>,
    seqs: Range<usize>,
    stall: Duration,
) -> Tally {
    let expected = (routes.len() * seqs.len()) as u64;
    let mut last = (ledger.arrived(), Instant::now());
    loop {
        let arrived = ledger.arrived();
        if arrived != last.0 {
            last = (arrived, Instant::now());
        }
        // The ledger-wide counter is cheap; the exact count only once it can be done.
        if arrived >= expected && ledger.delivered(routes.clone(), seqs.clone()) >= expected {
            break;
        }
        if last.1.elapsed() >= stall {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    ledger.tally(routes, seqs)
}
