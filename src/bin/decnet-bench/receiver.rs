//! Lean loopback receivers: an actix-web server answering 200 with an empty body that
//! records each arrival in a preallocated ledger (atomics only, no lock, no log), and a
//! blackhole that accepts connections and never answers.

use std::{
    io,
    net::TcpListener,
    ops::Range,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use actix_web::{dev::ServerHandle, web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;

use super::{clock, report::BenchError, stats};

/// The header naming the event: the bench publishes numeric ids, the slot index.
const EVENT_ID: &str = "x-decnet-event-id";
/// The payload field holding the publish time (µs on [`clock`]).
const SENT_FIELD: &[u8] = b"\"sent_us\":";

/// One slot per expected delivery: route (subscription) × event sequence number.
pub struct Ledger {
    per_route: usize,
    slots: Box<[Slot]>,
    /// Slots hit at least once, over the whole ledger (cheap to poll).
    arrived: AtomicU64,
    /// TCP connections accepted: keep-alive reuse shows as few.
    pub connections: AtomicU64,
    /// Requests that named no slot (a bug in the worker or the bench).
    pub stray: AtomicU64,
}

#[derive(Default)]
struct Slot {
    hits: AtomicU32,
    sent_us: AtomicU64,
    at_us: AtomicU64,
}

/// What arrived for a range of routes and sequence numbers.
#[derive(Debug, Default)]
pub struct Tally {
    pub expected: u64,
    /// Distinct slots hit at least once.
    pub delivered: u64,
    /// Hits beyond the first.
    pub duplicated: u64,
    pub lost: u64,
    pub first_sent_us: Option<u64>,
    pub last_at_us: Option<u64>,
    /// Publish → arrival, µs, sorted.
    pub latencies_us: Vec<u64>,
}

impl Tally {
    /// Deliveries per second from the first publish to the last arrival.
    pub fn rate(&self) -> f64 {
        match (self.first_sent_us, self.last_at_us) {
            (Some(a), Some(b)) if b > a => self.delivered as f64 * 1e6 / (b - a) as f64,
            _ => 0.0,
        }
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        stats::percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

impl Ledger {
    pub fn new(routes: usize, per_route: usize) -> Self {
        Self {
            per_route,
            slots: (0..routes * per_route).map(|_| Slot::default()).collect(),
            arrived: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stray: AtomicU64::new(0),
        }
    }

    fn record(&self, route: Option<usize>, seq: Option<usize>, body: &[u8]) {
        let at = clock::now_us();
        let slot = match (route, seq) {
            (Some(r), Some(s)) if s < self.per_route => self.slots.get(r * self.per_route + s),
            _ => None,
        };
        let Some(slot) = slot else {
            self.stray.fetch_add(1, Relaxed);
            return;
        };
        if slot.hits.fetch_add(1, Relaxed) == 0 {
            slot.at_us.store(at, Relaxed);
            slot.sent_us.store(sent_us(body).unwrap_or(at), Relaxed);
            self.arrived.fetch_add(1, Relaxed);
        }
    }

    /// Distinct deliveries so far, over every slot.
    pub fn arrived(&self) -> u64 {
        self.arrived.load(Relaxed)
    }

    /// Distinct deliveries so far over these routes and sequence numbers.
    pub fn delivered(&self, routes: Range<usize>, seqs: Range<usize>) -> u64 {
        self.slots_in(routes, seqs)
            .filter(|s| s.hits.load(Relaxed) > 0)
            .count() as u64
    }

    pub fn tally(&self, routes: Range<usize>, seqs: Range<usize>) -> Tally {
        let mut t = Tally::default();
        for slot in self.slots_in(routes, seqs) {
            t.expected += 1;
            let hits = u64::from(slot.hits.load(Relaxed));
            if hits == 0 {
                t.lost += 1;
                continue;
            }
            t.delivered += 1;
            t.duplicated += hits - 1;
            let (sent, at) = (slot.sent_us.load(Relaxed), slot.at_us.load(Relaxed));
            t.first_sent_us = Some(t.first_sent_us.map_or(sent, |f| f.min(sent)));
            t.last_at_us = Some(t.last_at_us.map_or(at, |l| l.max(at)));
            t.latencies_us.push(at.saturating_sub(sent));
        }
        t.latencies_us.sort_unstable();
        t
    }

    /// Publish and first-arrival times (µs on [`clock`]) of each delivered slot.
    pub fn sent_and_arrived(&self, routes: Range<usize>, seqs: Range<usize>) -> Vec<(u64, u64)> {
        self.slots_in(routes, seqs)
            .filter(|s| s.hits.load(Relaxed) > 0)
            .map(|s| (s.sent_us.load(Relaxed), s.at_us.load(Relaxed)))
            .collect()
    }

    /// When each delivered slot first arrived (µs on [`clock`]), sorted.
    pub fn arrivals_us(&self, routes: Range<usize>, seqs: Range<usize>) -> Vec<u64> {
        let mut at: Vec<u64> = self
            .slots_in(routes, seqs)
            .filter(|s| s.hits.load(Relaxed) > 0)
            .map(|s| s.at_us.load(Relaxed))
            .collect();
        at.sort_unstable();
        at
    }

    fn slots_in(&self, routes: Range<usize>, seqs: Range<usize>) -> impl Iterator<Item = &Slot> {
        let per_route = self.per_route;
        let seqs = seqs.start.min(per_route)..seqs.end.min(per_route);
        routes.flat_map(move |r| {
            let base = r * per_route;
            self.slots
                .get(base + seqs.start..base + seqs.end)
                .unwrap_or_default()
        })
    }
}

/// Parse the digits after `"sent_us":` without parsing the JSON.
fn sent_us(body: &[u8]) -> Option<u64> {
    let at = body
        .windows(SENT_FIELD.len())
        .position(|w| w == SENT_FIELD)?;
    let digits = &body[at + SENT_FIELD.len()..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// An HTTP receiver on its own thread and actix system, paths `/r/<route>`.
pub struct Receiver {
    pub port: u16,
    pub ledger: Arc<Ledger>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start(ledger: Ledger) -> Result<Self, BenchError> {
        let ledger = Arc::new(ledger);
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| BenchError::setup("receiver cannot bind", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| BenchError::setup("receiver address", e))?
            .port();
        let shared = web::Data::from(ledger.clone());
        let counter = ledger.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(shared.clone())
                            .default_service(web::to(hook))
                    })
                    .on_connect(move |_, _| {
                        counter.connections.fetch_add(1, Relaxed);
                    })
                    // One thread: the machine has two cores and the worker needs the other.
                    .workers(1)
                    .backlog(4096)
                    .max_connections(100_000)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener);
                    let server = match server {
                        Ok(s) => s.run(),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(server.handle()));
                    let _ = server.await;
                })
            })
            .map_err(|e| BenchError::setup("receiver thread", e))?;
        let handle = rx
            .recv()
            .map_err(|e| BenchError::setup("receiver did not start", e))?
            .map_err(|e| BenchError::setup("receiver cannot listen", e))?;
        Ok(Self {
            port,
            ledger,
            handle,
            thread: Some(thread),
        })
    }

    pub fn url(&self, route: usize) -> String {
        format!("http://127.0.0.1:{}/r/{route}", self.port)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The stop command is sent at once; its completion future is not needed.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn hook(req: HttpRequest, body: Bytes, ledger: web::Data<Ledger>) -> HttpResponse {
    let route = req
        .path()
        .strip_prefix("/r/")
        .and_then(|r| r.parse::<usize>().ok());
    let seq = req
        .headers()
        .get(EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    ledger.record(route, seq, &body);
    HttpResponse::Ok().finish()
}

/// A TCP listener that accepts and never answers: every delivery to it times out.
pub struct Blackhole {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Blackhole {
    pub fn start() -> Result<Self, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| BenchError::setup("blackhole cannot bind", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| BenchError::setup("blackhole address", e))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| BenchError::setup("blackhole socket", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = std::thread::Builder::new()
            .name("bench-blackhole".into())
            .spawn(move || {
                // Held open and never read: the peer waits for an answer that never comes.
                let mut held = Vec::new();
                while !stop2.load(Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            held.push(conn);
                            accepted2.fetch_add(1, Relaxed);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .map_err(|e| BenchError::setup("blackhole thread", e))?;
        Ok(Self {
            port,
            accepted,
            stop,
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_time_is_read_from_the_payload() {
        assert_eq!(
            sent_us(br#"{"payload":{"sent_us":12345,"x":1}}"#),
            Some(12345)
        );
        assert_eq!(sent_us(br#"{"payload":{}}"#), None);
    }

    #[test]
    fn ledger_counts_lost_and_duplicated() {
        let l = Ledger::new(2, 3);
        l.record(Some(0), Some(0), br#"{"sent_us":10}"#);
        l.record(Some(0), Some(0), br#"{"sent_us":10}"#);
        l.record(Some(1), Some(2), br#"{"sent_us":10}"#);
        l.record(Some(1), Some(3), b"{}");
        let t = l.tally(0..2, 0..3);
        assert_eq!(
            (t.expected, t.delivered, t.duplicated, t.lost),
            (6, 2, 1, 4)
        );
        assert_eq!(l.stray.load(Relaxed), 1);
        assert_eq!(l.delivered(1..2, 0..3), 1);
        assert_eq!(l.arrivals_us(0..2, 0..3).len(), 2);
    }
}
