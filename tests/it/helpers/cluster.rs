//! A private 3-node NATS cluster with JetStream per test (and per bench scenario):
//! three `nats-server -js` routed to each other on loopback ports, each with its own
//! store in a temporary folder; a node can be killed and started again on its ports.
//! Also built into `decnet-bench`, so only std and the package's own dependencies.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// One node: its client, route and monitoring ports, and its store.
pub struct Node {
    child: Option<Child>,
    pub name: String,
    pub port: u16,
    route_port: u16,
    monitor_port: u16,
    store: tempfile::TempDir,
}

pub struct NatsCluster {
    pub nodes: Vec<Node>,
}

/// `n` distinct loopback ports free now: every listener is held until all are
/// bound, since the OS may hand out a port again once it is released.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free port: {e}"))
}

impl NatsCluster {
    /// Start `size` nodes and wait until they formed a cluster with a JetStream
    /// meta leader.
    pub async fn start(size: usize) -> Self {
        Self::try_start(size)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_start(size: usize) -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(size);
        let ports = free_ports(3 * size)?;
        for (i, p) in ports.chunks(3).enumerate() {
            nodes.push(Node {
                child: None,
                name: format!("n{i}"),
                port: p[0],
                route_port: p[1],
                monitor_port: p[2],
                store: tempfile::tempdir().map_err(|e| format!("JetStream store dir: {e}"))?,
            });
        }
        let mut cluster = Self { nodes };
        for i in 0..size {
            cluster.try_restart(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated (`DECNET_NATS_URL`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client that knows every node.
    pub async fn client(&self) -> Result<async_nats::Client, String> {
        let servers: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .filter_map(|n| n.url().parse().ok())
            .collect();
        async_nats::connect(servers)
            .await
            .map_err(|e| format!("cluster client: {e}"))
    }

    /// Kill node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start node `i` again on its ports, with its store.
    pub fn restart(&mut self, i: usize) {
        self.try_restart(i).unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_restart(&mut self, i: usize) -> Result<(), String> {
        self.kill(i);
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.route_port))
            .collect();
        let node = &self.nodes[i];
        let mut cmd = Command::new(binary());
        cmd.args(["-a", "127.0.0.1", "-p", &node.port.to_string()])
            .args(["-n", &node.name, "-js", "-sd"])
            .arg(node.store.path())
            .args(["--cluster_name", "decnet-test"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.route_port),
            ])
            .args(["--routes", &routes.join(",")])
            .args(["-m", &node.monitor_port.to_string()]);
        let child = wait_started(cmd)?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Poll until every running node sees the cluster's JetStream meta leader (from
    /// its monitoring `/jsz`).
    pub async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let led = get(node.monitor_port, "/jsz").is_some_and(|body| {
                    serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| {
                        v["meta_cluster"]["leader"]
                            .as_str()
                            .is_some_and(|l| !l.is_empty())
                    })
                });
                if led {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("node {}: no JetStream meta leader", node.name));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The node that leads `stream`'s replicas, by index.
    pub async fn stream_leader(&self, client: &async_nats::Client, stream: &str) -> Option<usize> {
        let js = async_nats::jetstream::new(client.clone());
        let mut s = js.get_stream(stream).await.ok()?;
        let leader = s.info().await.ok()?.cluster.as_ref()?.leader.clone()?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// Poll until `stream` has a leader and every replica on a running node is
    /// current (a restarted node caught up).
    pub async fn wait_stream_current(&self, client: &async_nats::Client, stream: &str) {
        let js = async_nats::jetstream::new(client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = js.get_stream(stream).await {
                if let Ok(info) = s.info().await {
                    if let Some(cluster) = &info.cluster {
                        let running = self.nodes.iter().filter(|n| n.child.is_some()).count();
                        let current = cluster
                            .replicas
                            .iter()
                            .filter(|r| r.current && !r.offline)
                            .count();
                        if cluster.leader.is_some() && current + 1 >= running {
                            return;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "stream {stream} never caught up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Which node holds the client connection named `name`, from each node's
    /// monitoring `/connz`.
    pub fn node_of_connection(&self, name: &str) -> Option<usize> {
        let needle = format!("\"name\":\"{name}\"");
        self.nodes.iter().position(|n| {
            n.child.is_some()
                && get(n.monitor_port, "/connz")
                    .is_some_and(|body| body.replace(": ", ":").contains(&needle))
        })
    }
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A plain HTTP/1.0 GET on loopback; the body.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

/// Spawn and wait for the "Server is ready" line.
fn wait_started(mut cmd: Command) -> Result<Child, String> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start nats-server: {e} (apt-get install nats-server)"))?;
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        return Err("nats-server stderr not piped".into());
    };
    let (tx, rx) = mpsc::channel();
    // Keeps draining the log after start, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Server is ready") {
                let _ = tx.send(());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => Ok(child),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("nats-server did not become ready".into())
        }
    }
}
