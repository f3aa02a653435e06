//! An HTTP receiver on 127.0.0.1:0 that records every request and answers as told;
//! its behaviour can change mid-test.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
    /// What it was answered.
    pub reply: Reply,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
    /// Whether the `webhook-*` headers verify with the Standard Webhooks reference
    /// library under `secret`.
    pub fn standard_verifies(&self, secret: &str) -> bool {
        use base64::Engine as _;
        let whsec = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(secret)
        );
        let mut headers = reqwest::header::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            if let Some(v) = self.header(name).and_then(|v| v.parse().ok()) {
                headers.insert(name, v);
            }
        }
        standardwebhooks::Webhook::new(&whsec)
            .is_ok_and(|hook| hook.verify(&self.body, &headers).is_ok())
    }

    /// Whether it was answered with a 2xx status.
    pub fn accepted(&self) -> bool {
        match &self.reply {
            Reply::Status(s) | Reply::WithHeaders(s, _) | Reply::Delay(_, s) | Reply::Close(s) => {
                (200..300).contains(s)
            }
            Reply::Hang | Reply::Reset => false,
        }
    }
}

/// What the receiver answers.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// Status with extra headers (e.g. `Retry-After`, `Location`).
    WithHeaders(u16, Vec<(String, String)>),
    /// Wait, then answer.
    Delay(Duration, u16),
    /// Answer, then close the connection: the sender needs a new one for the next.
    Close(u16),
    /// Never answer.
    Hang,
    /// Drop the connection without answering (shut the socket down both ways).
    Reset,
}

/// The raw socket of a connection, kept for `Reply::Reset`.
#[derive(Clone, Copy)]
struct ConnFd(std::os::fd::RawFd);

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    /// Replies by request path, before the script and the default.
    routes: Mutex<HashMap<String, Reply>>,
    arrived: Notify,
}

pub struct TestReceiver {
    pub port: u16,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl TestReceiver {
    /// Start answering 200 to everything.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        *shared.default.lock().unwrap() = Some(Reply::Status(200));
        let s = shared.clone();
        let (port, handle) = super::http::serve_on_thread(
            "receiver",
            move |cfg| {
                cfg.app_data(web::Data::new(s.clone()))
                    .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                    .default_service(web::to(handle));
            },
            Some(|conn, ext| {
                use std::os::fd::AsRawFd;
                if let Some(s) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    ext.insert(ConnFd(s.as_raw_fd()));
                }
            }),
        );
        Self {
            port,
            shared,
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The URL of another path on this receiver.
    pub fn url_at(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Always answer requests to `path` with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), reply);
    }

    /// Answer this from now on (after any scripted replies).
    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = Some(reply);
    }

    /// Answer these, in order, to the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Wait until at least `n` requests arrived, or panic after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.shared.arrived.notified();
            if self.count() >= n {
                return self.requests();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "expected {n} requests, got {} within {within:?}",
                    self.count()
                );
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs a runtime; a detached thread gives it one.
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(handle.stop(false));
        });
    }
}

async fn handle(req: HttpRequest, body: Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let routed = shared.routes.lock().unwrap().get(req.path()).cloned();
    let reply = if let Some(reply) = routed {
        reply
    } else {
        let next = shared.script.lock().unwrap().pop_front();
        next.or_else(|| shared.default.lock().unwrap().clone())
            .unwrap_or(Reply::Status(200))
    };
    shared.requests.lock().unwrap().push(Recorded {
        method: req.method().to_string(),
        path: req.uri().to_string(),
        headers,
        body,
        at: Instant::now(),
        reply: reply.clone(),
    });
    shared.arrived.notify_waiters();
    let close = matches!(reply, Reply::Close(_));
    let (status, extra) = match reply {
        Reply::Status(s) | Reply::Close(s) => (s, Vec::new()),
        Reply::WithHeaders(s, h) => (s, h),
        Reply::Delay(d, s) => {
            actix_rt::time::sleep(d).await;
            (s, Vec::new())
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            (500, Vec::new())
        }
        Reply::Reset => {
            if let Some(ConnFd(fd)) = req.conn_data::<ConnFd>().copied() {
                // SAFETY: the fd belongs to this request's live connection; only shut
                // down, never closed here.
                unsafe {
                    libc_shutdown(fd);
                }
            }
            (500, Vec::new())
        }
    };
    let mut resp = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK),
    );
    for (k, v) in extra {
        resp.insert_header((k, v));
    }
    if close {
        resp.force_close();
    }
    resp.finish()
}

/// `shutdown(fd, SHUT_RDWR)`: the peer sees the connection end with no answer.
unsafe fn libc_shutdown(fd: std::os::fd::RawFd) {
    extern "C" {
        fn shutdown(fd: i32, how: i32) -> i32;
    }
    const SHUT_RDWR: i32 = 2;
    shutdown(fd, SHUT_RDWR);
}
