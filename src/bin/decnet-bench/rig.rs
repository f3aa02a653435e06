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
    /// A content filter (none: every event of the patterns).
    pub filter: Option<String>,
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
                    row.filter = Set(sub.filter.clone());
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
    /// The worker in a process of its own (this executable as [`worker_child`]):
    /// stopped with SIGTERM by [`ChildWorker::stop`], else killed with SIGKILL.
    pub fn spawn_child_worker(&self) -> Result<ChildWorker, BenchError> {
        let exe = std::env::current_exe().map_err(|e| BenchError::setup("own executable", e))?;
        let child = std::process::Command::new(exe)
            .arg(WORKER_CHILD)
            .args(self.pairs.iter().map(|(k, v)| format!("{k}={v}")))
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| BenchError::setup("worker process", e))?;
        Ok(ChildWorker {
            pid: child.id(),
            child: Some(child),
        })
    }

    /// Dead letters in the rig's database: (queue overflow, every other reason).
    pub async fn dead_letters(&self) -> Result<(u64, u64), BenchError> {
        use entity::dead_letter::{Column, Entity};
        use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
        let fail = |e| BenchError::setup("count dead letters", e);
        let overflow = decnet_webhook::db::dead_letters::Reason::QueueOverflow.as_str();
        let all = Entity::find().count(&self.db).await.map_err(fail)?;
        let overflowed = Entity::find()
            .filter(Column::Reason.eq(overflow))
            .count(&self.db)
            .await
            .map_err(fail)?;
        Ok((overflowed, all.saturating_sub(overflowed)))
    }
}

/// A worker process; killed (SIGKILL) when dropped unless stopped.
pub struct ChildWorker {
    pid: u32,
    /// `None` once reaped.
    child: Option<std::process::Child>,
}

/// How a worker process ended.
pub struct Stopped {
    /// Its CPU time over its life (user and system, s), as `wait4` reports it: the
    /// children it reaped included.
    pub cpu_s: f64,
    /// It exited by itself on SIGTERM within the bound (not killed by a signal).
    pub graceful: bool,
}

/// How long a killed process may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl ChildWorker {
    /// Its process id (to read its CPU time and memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait at most `within` for it to finish its deliveries and write
    /// what it deferred (as `decnet webhook` stops); SIGKILL after that.
    pub async fn stop(mut self, within: Duration) -> Result<Stopped, BenchError> {
        let child = self
            .child
            .take()
            .ok_or_else(|| BenchError("the worker process was already stopped".into()))?;
        // Not reaped yet (its handle is held): the pid is still this child's.
        let pid = self.pid as libc::pid_t;
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let started = Instant::now();
        let mut killed = false;
        let (status, usage) = loop {
            if let Some(ended) = reap(pid)? {
                break ended;
            }
            if !killed && started.elapsed() >= within {
                killed = true;
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if started.elapsed() >= within + KILL_WAIT {
                return Err(BenchError(format!("the worker process {pid} never exited")));
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        };
        // Reaped by `reap`: the handle has nothing left to wait for.
        drop(child);
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Ok(Stopped {
            cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            graceful: libc::WIFEXITED(status),
        })
    }
}

/// Reap the child `pid` if it has ended, returning its wait status and resource use;
/// `None` while it runs.
fn reap(pid: libc::pid_t) -> Result<Option<(libc::c_int, libc::rusage)>, BenchError> {
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes into the two locals above; WNOHANG keeps it from blocking.
    let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
    if got == pid {
        return Ok(Some((status, usage)));
    }
    let error = std::io::Error::last_os_error();
    if got == 0 || error.kind() == std::io::ErrorKind::Interrupted {
        return Ok(None);
    }
    Err(BenchError::setup("waiting for the worker process", error))
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `decnet-bench worker-child key=value…`: run the worker on these settings until
/// SIGTERM (a graceful stop) or SIGKILL.
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
        let app = match Application::build(settings, components, None, None).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("{WORKER_CHILD}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        match app.run_until_stopped().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
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
