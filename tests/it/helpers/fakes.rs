//! Protocol-faithful stand-ins for the destinations' services (Splunk HEC,
//! Elasticsearch `_bulk`, the Logs Ingestion API, PagerDuty, Teams, Discord): each
//! test gives a function that checks a request as the service would and answers
//! with the service's documented status and body. Runs on 127.0.0.1:0.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::Notify;

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

/// What the fake answers.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }
    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    arrived: Notify,
    handler: Box<Handler>,
}

pub struct FakeService {
    pub port: u16,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeService {
    pub fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            seen: Mutex::default(),
            arrived: Notify::new(),
            handler: Box::new(handler),
        });
        let s = shared.clone();
        let (port, handle) = super::http::serve_on_thread(
            "fake",
            move |cfg| {
                cfg.app_data(web::Data::new(s.clone()))
                    .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                    .default_service(web::to(serve));
            },
            None,
        );
        Self {
            port,
            shared,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Wait until at least `n` requests arrived, or panic after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.shared.arrived.notified();
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "expected {n} requests, got {}", seen.len());
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_rt::System::new().block_on(handle.stop(false)));
    }
}

async fn serve(req: HttpRequest, body: Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let seen = Seen {
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    };
    let answer = (shared.handler)(&seen);
    shared.seen.lock().unwrap().push(seen);
    shared.arrived.notify_waiters();
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(answer.status).expect("a status"),
    );
    for (k, v) in answer.headers {
        response.insert_header((k, v));
    }
    response.body(answer.body)
}
