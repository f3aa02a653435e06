//! A worker (and optionally the API) running in-process against a private
//! nats-server and a fresh database.

use std::time::Duration;

use actix::Addr;
use chrono::Utc;
use decnet_webhook::{
    actors::supervisor::{GetStatus, Status, SupervisorActor},
    config::Settings,
    db,
    startup::{Application, Components},
};
use entity::webhook_subscription::ActiveModel;
use sea_orm::{DatabaseConnection, Set};
use tokio::sync::oneshot;

use super::{eventually, NatsServer, TestDb};

pub const SECRET: &str = "a-test-secret-of-32-characters!!";

pub struct WorkerApp {
    pub nats: NatsServer,
    pub test_db: TestDb,
    pub db: DatabaseConnection,
    pub supervisor: Addr<SupervisorActor>,
    worker: Option<WorkerHandle>,
    extra: Vec<(String, String)>,
}

/// One running worker process-equivalent (its own actors and delivery pool).
pub struct WorkerHandle {
    pub supervisor: Addr<SupervisorActor>,
    pub stats: std::sync::Arc<decnet_webhook::actors::WorkerStats>,
    /// `/metrics` on `metrics_bind`, when the settings have one.
    pub metrics_port: Option<u16>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<actix_rt::task::JoinHandle<Result<(), decnet_webhook::startup::StartupError>>>,
}

impl WorkerHandle {
    pub async fn spawn(settings: Settings) -> Self {
        super::use_built_sandbox();
        let app = Application::build(
            settings,
            Components {
                api: false,
                worker: true,
            },
            None,
            None,
        )
        .await
        .expect("worker builds");
        let worker = app.worker().expect("worker runs");
        let supervisor = worker.supervisor.clone();
        let stats = worker.stats.clone();
        let metrics_port = app.metrics_port();
        let (tx, rx) = oneshot::channel::<()>();
        let done = actix_rt::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            supervisor,
            stats,
            metrics_port,
            stop: Some(tx),
            done: Some(done),
        }
    }

    pub async fn status(&self) -> Status {
        self.supervisor
            .send(GetStatus)
            .await
            .expect("supervisor answers")
    }

    /// Stop gracefully and return how the run ended.
    pub async fn stop(mut self) -> Result<(), decnet_webhook::startup::StartupError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.done.take() {
            Some(done) => done.await.expect("worker task"),
            None => Ok(()),
        }
    }
}

/// Settings every worker test shares: fast retries, loopback receivers allowed.
pub fn settings(nats: &NatsServer, db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    let mut pairs: Vec<(String, String)> = vec![
        ("database_url".into(), db.url.clone()),
        ("nats_url".into(), nats.url()),
        ("webhook_allow_private".into(), "true".into()),
        ("webhook_retry_schedule".into(), "0.02,0.02".into()),
        ("webhook_timeout_secs".into(), "2".into()),
        ("webhook_bus_reconnect_secs".into(), "1".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::from_pairs(pairs).expect("valid test settings")
}

impl WorkerApp {
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        Self::start_on(NatsServer::start(), extra).await
    }

    pub async fn start_on(nats: NatsServer, extra: &[(&str, &str)]) -> Self {
        let test_db = TestDb::new().await;
        let db = test_db.connect().await;
        Self::start_with_db(nats, test_db, db, extra).await
    }

    /// Start on a database the test has already filled.
    pub async fn start_with_db(
        nats: NatsServer,
        test_db: TestDb,
        db: DatabaseConnection,
        extra: &[(&str, &str)],
    ) -> Self {
        let worker = WorkerHandle::spawn(settings(&nats, &test_db, extra)).await;
        Self {
            supervisor: worker.supervisor.clone(),
            nats,
            test_db,
            db,
            worker: Some(worker),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Another worker on the same bus and database.
    pub async fn second_worker(&self) -> WorkerHandle {
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        WorkerHandle::spawn(settings(&self.nats, &self.test_db, &extra)).await
    }

    pub async fn status(&self) -> Status {
        self.worker.as_ref().expect("worker running").status().await
    }

    /// Stop the worker gracefully, keeping the bus and the database.
    pub async fn stop_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await.expect("worker stops cleanly");
        }
    }

    /// Start a fresh worker on the same bus and database.
    pub async fn start_worker(&mut self) {
        let w = self.second_worker().await;
        self.supervisor = w.supervisor.clone();
        self.worker = Some(w);
    }

    /// Wait until exactly these subscriptions run.
    pub async fn wait_running(&self, uuids: &[&str]) {
        let mut want: Vec<String> = uuids.iter().map(|s| s.to_string()).collect();
        want.sort();
        eventually(Duration::from_secs(10), "the running set", || async {
            let mut running: Vec<String> = self.status().await.running.into_keys().collect();
            running.sort();
            (running == want).then_some(())
        })
        .await;
    }

    /// Insert a subscription row directly.
    pub async fn insert(&self, name: &str, url: &str, patterns: &[&str]) -> String {
        insert_subscription(&self.db, name, url, patterns).await
    }

    /// Tell the worker to reload, as the API does.
    pub async fn signal_changed(&self) {
        self.publish(decnet_webhook::bus::SUBSCRIPTIONS_CHANGED, b"{}")
            .await;
    }

    /// Insert, signal, and wait until it runs.
    pub async fn subscribe(&self, name: &str, url: &str, patterns: &[&str]) -> String {
        let uuid = self.insert(name, url, patterns).await;
        self.run_inserted(uuid).await
    }

    /// Insert a prepared row whole (so no reload can start it half-written), signal,
    /// and wait until it runs.
    pub async fn subscribe_row(&self, row: ActiveModel) -> String {
        let uuid = db::subscriptions::insert(&self.db, row)
            .await
            .expect("insert subscription")
            .uuid;
        self.run_inserted(uuid).await
    }

    async fn run_inserted(&self, uuid: String) -> String {
        self.signal_changed().await;
        eventually(Duration::from_secs(10), "the new subscription", || async {
            self.status()
                .await
                .running
                .contains_key(&uuid)
                .then_some(())
        })
        .await;
        uuid
    }

    /// Publish `n` events `{"id":"<prefix>-<i>","payload":{}}` on `attacker.observed`,
    /// in order on one connection, flushed.
    pub async fn publish_events(&self, prefix: &str, n: usize) {
        let client = self.nats.client().await;
        for i in 0..n {
            let body = format!(r#"{{"id":"{prefix}-{i}","payload":{{}}}}"#);
            client
                .publish("attacker.observed", body.into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    }

    /// Publish raw bytes on a subject, flushed.
    pub async fn publish(&self, subject: &str, body: &[u8]) {
        let client = self.nats.client().await;
        client
            .publish(subject.to_owned(), body.to_vec().into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    }

    pub async fn stop(mut self) -> Result<(), decnet_webhook::startup::StartupError> {
        match self.worker.take() {
            Some(w) => w.stop().await,
            None => Ok(()),
        }
    }

    pub async fn row(&self, uuid: &str) -> entity::webhook_subscription::Model {
        decnet_webhook::db::subscriptions::get(&self.db, uuid)
            .await
            .unwrap()
            .expect("row exists")
    }

    /// The worker's `/metrics` URL (start it with `metrics_bind`).
    pub fn metrics_url(&self) -> String {
        let port = self
            .worker
            .as_ref()
            .and_then(|w| w.metrics_port)
            .expect("worker started with metrics_bind");
        format!("http://127.0.0.1:{port}/metrics")
    }

    pub fn worker_stats(&self) -> std::sync::Arc<decnet_webhook::actors::WorkerStats> {
        self.worker.as_ref().expect("worker running").stats.clone()
    }
}

pub async fn insert_subscription(
    db: &DatabaseConnection,
    name: &str,
    url: &str,
    patterns: &[&str],
) -> String {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    let row = decnet_webhook::db::subscriptions::new_row(name, url, SECRET, &patterns, true);
    decnet_webhook::db::subscriptions::insert(db, row)
        .await
        .expect("insert subscription")
        .uuid
}

/// Recompute `X-DECNET-Signature` over the raw body.
pub fn expected_signature(body: &[u8]) -> String {
    expected_signature_with(SECRET, body)
}

/// `X-DECNET-Signature` of `body` under `secret`.
pub fn expected_signature_with(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
