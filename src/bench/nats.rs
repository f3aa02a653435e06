//! A private nats-server on a random loopback port, killed on drop; with JetStream,
//! its store is a temporary folder removed with it.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use super::BenchError;

pub struct NatsServer {
    child: Child,
    pub port: u16,
    /// Dropped after the server is killed (field order), so the store goes last.
    _store: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Start `nats-server -a 127.0.0.1 -p -1` (or `$NATS_SERVER_BIN`) and wait for its
    /// "Server is ready" line, reading the port it picked from its log.
    pub fn start() -> Result<Self, BenchError> {
        Self::spawn(None)
    }

    /// The same with JetStream enabled (`-js`), its store in a temporary folder.
    pub fn start_jetstream() -> Result<Self, BenchError> {
        let store = tempfile::tempdir().map_err(|e| BenchError::setup("JetStream store dir", e))?;
        Self::spawn(Some(store))
    }

    fn spawn(store: Option<tempfile::TempDir>) -> Result<Self, BenchError> {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let mut cmd = Command::new(&bin);
        cmd.args(["-a", "127.0.0.1", "-p", "-1"]);
        if let Some(dir) = &store {
            cmd.arg("-js").arg("-sd").arg(dir.path());
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::setup(&format!("cannot start {bin}"), e))?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            return Err(BenchError("nats-server stderr not piped".into()));
        };
        let (tx, rx) = mpsc::channel();
        // Keeps draining the log after start, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    port = rest.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                }
                if line.contains("Server is ready") {
                    let _ = tx.send(port);
                }
                // Slow consumers and errors explain lost events: show them.
                if line.contains("[WRN]") || line.contains("[ERR]") {
                    eprintln!("nats-server: {line}");
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => Ok(Self {
                child,
                port,
                _store: store,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(BenchError("nats-server did not become ready".into()))
            }
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
