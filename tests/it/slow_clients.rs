//! Slow clients against the real binary: requests that send their head and part of a
//! body, then nothing, must neither exhaust the process's descriptors nor hold a
//! connection for ever.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{
    eventually,
    process::Decnet,
    worker::{insert_subscription, WorkerApp},
    AppOptions, NatsServer, Reply, TestApp, TestDb, TestReceiver, WAIT,
};

/// A head and part of a body the server must wait for: a login (which reads its
/// body) declared 100 bytes long, of which 13 come.
const HALF_SENT_LOGIN: &[u8] = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":\"";
/// A chunked body, cut inside its first chunk, to a route that never reads it.
const HALF_SENT_CHUNKED: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\
Transfer-Encoding: chunked\r\n\r\n10\r\n{\"a\":";

/// How long the probe of `/healthz` may queue behind the attack: the connections
/// ahead of it get the head and body deadlines before it is taken.
const PROBE_WAIT: Duration = Duration::from_secs(90);
/// Connections the server must have taken before the attack counts as under way: well
/// above what it holds at rest, within what it may hold under `ulimit -n 1024`.
const SERVER_TAKES: usize = 400;

/// Let this test process open the thousand connections of the attack.
fn raise_own_open_files(needed: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            limit.rlim_max >= needed,
            "this test needs {needed} open files; the hard limit is {}",
            limit.rlim_max
        );
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Descriptors the process `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Connections the process `pid` has accepted on `port` and holds (its descriptors);
/// the ones still in the kernel's accept queue are not among them.
fn accepted_connections(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let local_port = format!(":{port:04X}");
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|table| table.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local address, state (01: established), inode
            cols.len() > 9
                && cols[1].ends_with(&local_port)
                && cols[3] == "01"
                && inodes.contains(cols[9])
        })
        .count()
}

/// Send `request` on a new connection and read until the server closes it; what it
/// answered, or a panic if it holds the connection past [`WAIT`].
async fn answer_then_close(port: u16, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, conn.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the server still holds the connection; it answered: {}",
                String::from_utf8_lossy(&answer)
            )
        })
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A short deadline, so the tests of what happens past it run quickly; yet long
/// enough that a loaded two-core machine answers a complete request head within it
/// (at 0.5 s, a starved listener thread once saw its deadline pass first).
const SHORT_DEADLINE: &str = "2";

async fn api_with_short_deadline() -> TestApp {
    TestApp::spawn(AppOptions::default().setting("api_request_timeout_secs", SHORT_DEADLINE)).await
}

#[actix_rt::test]
async fn a_body_that_stops_coming_is_answered_408_and_its_connection_closed() {
    let app = api_with_short_deadline().await;
    let answer = answer_then_close(app.port, HALF_SENT_LOGIN).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(&format!(
            r#"{{"detail":"Request body not received within {SHORT_DEADLINE} s"}}"#
        )),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
}

#[actix_rt::test]
async fn a_chunked_body_left_unread_does_not_hold_its_connection() {
    let app = api_with_short_deadline().await;
    // /healthz answers without reading the body; the rest never comes.
    let answer = answer_then_close(app.port, HALF_SENT_CHUNKED).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[actix_rt::test]
async fn a_head_that_stops_coming_is_answered_408_and_its_connection_closed() {
    let app = api_with_short_deadline().await;
    let answer = answer_then_close(app.port, b"GET /healthz HTTP/1.1\r\nHost: 127").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[actix_rt::test]
async fn each_connection_carries_one_request_so_a_second_head_cannot_stall_it() {
    let app = api_with_short_deadline().await;
    // A whole request, then the start of a second one that never ends.
    let answer = answer_then_close(
        app.port,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHo",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

#[actix_rt::test]
async fn the_metrics_listener_has_the_same_deadlines() {
    let app = WorkerApp::start(&[
        ("metrics_bind", "127.0.0.1:0"),
        ("api_request_timeout_secs", SHORT_DEADLINE),
    ])
    .await;
    let port: u16 = app
        .metrics_url()
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the metrics port");
    let answer = answer_then_close(port, b"GET /metrics HTTP/1.1\r\nHost: 127").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let chunked = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\
Transfer-Encoding: chunked\r\n\r\n10\r\n{\"a\":";
    let answer = answer_then_close(port, chunked).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = answer_then_close(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /metrics HTTP/1.1\r\nHo",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_holds_at_most_decnet_api_max_connections() {
    const BOUND: usize = 8;
    let test_db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let api = Decnet::spawn(
        &["api"],
        &[
            ("DECNET_DATABASE_URL", test_db.url.clone()),
            ("DECNET_BUS_ENABLED", "false".into()),
            ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
            (
                "DECNET_JWT_SECRET",
                crate::helpers::app::TEST_JWT_SECRET.into(),
            ),
            ("DECNET_API_MAX_CONNECTIONS", BOUND.to_string()),
            // Long enough that none of the attack's connections is let go meanwhile.
            ("DECNET_API_REQUEST_TIMEOUT_SECS", "60".into()),
        ],
        dir.path(),
    );
    let http = reqwest::Client::new();
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    eventually(WAIT, "the API", || async {
        let resp = http.get(&healthz).send().await.ok()?;
        (resp.status() == 200).then_some(())
    })
    .await;
    drop(http);
    let attack = Attack::start(SocketAddr::from(([127, 0, 0, 1], port)), 3 * BOUND);
    eventually(WAIT, "the half-sent requests", || async {
        (attack.started() == 3 * BOUND).then_some(())
    })
    .await;
    let pid = api.pid();
    eventually(WAIT, "the API taking its bound of them", || async {
        let accepted = accepted_connections(pid, port);
        if accepted >= BOUND {
            Ok(())
        } else {
            Err(format!("{accepted} accepted"))
        }
    })
    .await;
    // The others wait in the accept queue, costing the process nothing.
    assert_eq!(accepted_connections(pid, port), BOUND);
    assert_eq!(attack.held(), 3 * BOUND);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `count` connections, each sending a request head and part of its body and then
/// nothing; one the server closes is opened again, so the attack lasts until dropped.
struct Attack {
    /// Connections open with their half-sent request written.
    held: Arc<AtomicUsize>,
    /// Attackers that have written their request at least once.
    started: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Attack {
    fn start(addr: SocketAddr, count: usize) -> Self {
        let held = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let tasks = (0..count)
            .map(|i| {
                let (held, started) = (held.clone(), started.clone());
                let request = if i % 2 == 0 {
                    HALF_SENT_LOGIN
                } else {
                    HALF_SENT_CHUNKED
                };
                tokio::spawn(async move {
                    let mut first = true;
                    loop {
                        let Ok(mut conn) = TcpStream::connect(addr).await else {
                            continue;
                        };
                        if conn.write_all(request).await.is_err() {
                            continue;
                        }
                        held.fetch_add(1, Ordering::SeqCst);
                        if std::mem::take(&mut first) {
                            started.fetch_add(1, Ordering::SeqCst);
                        }
                        // Whatever the server answers, read until it closes.
                        let mut sink = [0u8; 1024];
                        while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Self {
            held,
            started,
            tasks,
        }
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_under_1024_descriptors_stop_no_delivery_and_healthz_answers() {
    const ATTACKERS: usize = 1000;
    raise_own_open_files(ATTACKERS as libc::rlim_t + 1024);
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    // Every delivery needs a connection, and so a descriptor, of its own.
    rx.set_default(Reply::Close(200));
    let uuid = insert_subscription(&db, "steady", &rx.url(), &["attacker.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let serve = Decnet::spawn_with_open_files(
        &["serve"],
        &[
            ("DECNET_DATABASE_URL", test_db.url.clone()),
            ("DECNET_NATS_URL", nats.url()),
            ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
            ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".into()),
            ("DECNET_WEBHOOK_RELOAD_SECS", "3600".into()),
            // Any failure counted against the receiver trips it.
            ("DECNET_WEBHOOK_CIRCUIT_THRESHOLD", "1".into()),
        ],
        dir.path(),
        1024,
    );
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    eventually(WAIT, "the API", || async {
        let resp = http.get(&healthz).send().await.ok()?;
        (resp.status() == 200).then_some(())
    })
    .await;
    serve.wait_log("subscriptions loaded").await;
    let client = nats.client().await;
    eventually(WAIT, "the worker consuming", || async {
        client
            .publish("attacker.probe", r#"{"id":"probe","payload":{}}"#.into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        (rx.count() >= 1).then_some(())
    })
    .await;
    let before = rx.count();

    let attack = Attack::start(SocketAddr::from(([127, 0, 0, 1], port)), ATTACKERS);
    eventually(WAIT, "1,000 half-sent requests", || async {
        let started = attack.started();
        if started >= ATTACKERS {
            Ok(())
        } else {
            Err(format!("{started} sent"))
        }
    })
    .await;
    // The server has taken hundreds of them (each holds a descriptor there).
    let pid = serve.pid();
    eventually(WAIT, "the server holding the attack", || async {
        let open = open_descriptors(pid);
        if open >= SERVER_TAKES {
            Ok(())
        } else {
            Err(format!("{open} descriptors open"))
        }
    })
    .await;

    // /healthz answers, on a connection of its own.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(PROBE_WAIT)
        .build()
        .unwrap();
    let resp = probe
        .get(&healthz)
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz during the attack: {e:?}\n{}", serve.log()));
    assert_eq!(resp.status(), 200);
    // Half the descriptors, by default.
    let accepted = accepted_connections(pid, port);
    assert!(accepted <= 512, "{accepted} connections held");

    // Every event published during the attack is delivered.
    for i in 0..20 {
        let body = format!(r#"{{"id":"during-{i}","payload":{{}}}}"#);
        client
            .publish("attacker.observed", body.into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    rx.wait_for(before + 20, WAIT).await;
    assert!(
        attack.held() > 0,
        "the attack is still on when the deliveries arrive"
    );

    // No failure was counted against the receiver.
    let row = decnet_webhook::db::subscriptions::get(&db, &uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.consecutive_failures, 0, "{:?}", row.last_error);
    assert!(row.auto_disabled_at.is_none(), "{:?}", row.last_error);
    assert!(
        !serve.log().contains("Too many open files"),
        "{}",
        serve.log()
    );
    drop(attack);
}
