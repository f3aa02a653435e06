//! A private `nats-server` per test (and per bench scenario), killed on drop and
//! restartable on the same port; with JetStream, its store is a temporary folder
//! removed with it. Also built into `decnet-bench`, so only std and the package's own
//! dependencies here.

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
        Self::try_start(false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start with JetStream enabled, its store in a temporary folder.
    pub fn start_jetstream() -> Self {
        Self::try_start(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `start` (or with `jetstream`, `start_jetstream`) that reports a failure instead
    /// of panicking: the bench turns it into a setup error.
    pub fn try_start(jetstream: bool) -> Result<Self, String> {
        let dir = if jetstream {
            Some(tempfile::tempdir().map_err(|e| format!("JetStream store dir: {e}"))?)
        } else {
            None
        };
        let (child, port) = spawn(-1, dir.as_ref())?;
        Ok(Self {
            child: Some(child),
            port,
            jetstream_dir: dir,
        })
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
        let (child, _) = spawn(port, self.jetstream_dir.as_ref()).unwrap_or_else(|e| panic!("{e}"));
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
fn spawn(port: i32, js_dir: Option<&tempfile::TempDir>) -> Result<(Child, u16), String> {
    let bin = binary();
    let mut cmd = Command::new(&bin);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(dir) = js_dir {
        cmd.arg("-js").arg("-sd").arg(dir.path());
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e} (apt-get install nats-server)"))?;
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        return Err("nats-server stderr not piped".into());
    };
    let (tx, rx) = mpsc::channel();
    // Keeps draining the log after start, so the server never blocks on a full pipe.
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
            // Slow consumers and errors explain lost events: show them.
            if line.contains("[WRN]") || line.contains("[ERR]") {
                eprintln!("nats-server: {line}");
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Some(port)) => Ok((child, port)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err("nats-server did not become ready".into())
        }
    }
}
