//! A private nats-server on a random loopback port, killed on drop.

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
}

impl NatsServer {
    /// Start `nats-server -a 127.0.0.1 -p -1` (or `$NATS_SERVER_BIN`) and wait for its
    /// "Server is ready" line, reading the port it picked from its log.
    pub fn start() -> Result<Self, BenchError> {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let mut child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", "-1"])
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
            Ok(Some(port)) => Ok(Self { child, port }),
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
