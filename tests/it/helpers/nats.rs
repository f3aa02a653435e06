//! A private `nats-server` per test, killed on drop and restartable on the same port.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    jetstream_dir: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Start on a random port (`-p -1`).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Start with JetStream enabled, its store in a temporary folder.
    pub fn start_jetstream() -> Self {
        Self::start_with(true)
    }

    /// A server that is not running yet, on a port reserved now (start it with `restart`).
    pub fn not_started() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self {
            child: None,
            port,
            jetstream_dir: None,
        }
    }

    fn start_with(jetstream: bool) -> Self {
        let dir = jetstream.then(|| tempfile::tempdir().expect("jetstream dir"));
        let (child, port) = spawn(-1, dir.as_ref());
        Self {
            child: Some(child),
            port,
            jetstream_dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port (after `stop`).
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port as i32;
        let (child, _) = spawn(port, self.jetstream_dir.as_ref());
        self.child = Some(child);
    }

    /// Publish every payload on `subject` as fast as the protocol allows: one write of
    /// every `PUB` over a raw connection, then `PING`/`PONG` so the server has them all.
    /// Blocking: run it off the test's runtime.
    pub fn publish_burst_to(port: u16, subject: &str, payloads: &[String]) {
        use std::io::{BufRead, BufReader, Write};
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("nats connects");
        let mut reader = BufReader::new(stream.try_clone().expect("clone socket"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("INFO line");
        assert!(line.starts_with("INFO"), "{line}");
        let mut out = Vec::with_capacity(payloads.len() * 128);
        out.extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
        for p in payloads {
            out.extend_from_slice(format!("PUB {subject} {}\r\n", p.len()).as_bytes());
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"PING\r\n");
        (&stream).write_all(&out).expect("burst written");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("server answers");
            assert!(!line.starts_with("-ERR"), "{line}");
            if line.starts_with("PONG") {
                return;
            }
        }
    }

    /// A plain client for the test itself.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("test client connects")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

/// Spawn and wait for the "Server is ready" line; returns the client port.
fn spawn(port: i32, js_dir: Option<&tempfile::TempDir>) -> (Child, u16) {
    let mut cmd = Command::new(binary());
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(dir) = js_dir {
        cmd.arg("-js").arg("-sd").arg(dir.path());
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nats-server must be on PATH (apt-get install nats-server)");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                port = rest
                    .trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok());
            }
            if line.contains("Server is ready") {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .ok()
        .flatten()
        .expect("nats-server did not become ready");
    (child, port)
}
