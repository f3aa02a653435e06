//! How a request reaches a receiver: at the addresses the URL guard checked (cached
//! for a short while, the one that last connected tried first), over one of this
//! thread's HTTP clients (the shared one, or the one of a receiver's own TLS
//! settings), within the per-destination cap on requests in flight; and its answer
//! read within a bound. One per sender thread, as awc's client is `!Send`.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    time::{Duration, Instant},
};

use awc::{
    error::{ConnectError, SendRequestError},
    http::{Method, Uri},
    ClientRequest, ClientResponse,
};
use futures::{Stream, StreamExt as _};
use tokio::sync::Semaphore;

use super::{
    failure::{describe, io_error, local_cause, AttemptError},
    settings::DeliverySettings,
    target::Access,
};
use crate::domain::webhook_url::{UrlError, WebhookUrl};

/// Above this many HTTP clients for per-subscription TLS settings, the ones unused
/// for [`TLS_CLIENT_IDLE`] are dropped (with their connections).
const TLS_CLIENTS_SWEEP_AT: usize = 64;
const TLS_CLIENT_IDLE: Duration = Duration::from_secs(600);
/// How long a connection may wait idle for the next delivery.
const IDLE_CONNECTION: Duration = Duration::from_secs(4);
/// How long a guarded resolution is trusted.
const RESOLVE_TTL: Duration = Duration::from_secs(30);
/// Above this many cached hosts (or destinations), unused entries are swept on insert.
const SWEEP_AT: usize = 1024;
/// Response bodies are read (so the connection can be reused) and dropped, up to this.
const MAX_DRAIN: usize = 64 * 1024;
/// An answer read to be judged (a `_bulk` result for a batch) is read up to this.
const MAX_ANSWER: usize = 1024 * 1024;

pub(super) struct Connector {
    http: awc::Client,
    /// Clients for subscriptions with TLS settings of their own, by their fingerprint.
    tls_clients: RefCell<HashMap<[u8; 32], TlsClient>>,
    /// Guard verdicts by URL host (the verdict does not depend on the port).
    resolved: RefCell<HashMap<String, Rc<Resolution>>>,
    /// Requests in flight per destination (host, port).
    slots: RefCell<HashMap<(String, u16), Rc<Semaphore>>>,
    timeout: Duration,
    allow_private: bool,
    per_destination: usize,
}

struct TlsClient {
    http: awc::Client,
    used: Cell<Instant>,
}

struct Resolution {
    verdict: Result<Box<[IpAddr]>, UrlError>,
    /// The address that last connected, tried first.
    preferred: Cell<usize>,
    expires: Instant,
}

impl Connector {
    pub(super) fn new(settings: &DeliverySettings) -> Self {
        Self {
            http: http_client(settings.timeout, None),
            tls_clients: RefCell::new(HashMap::new()),
            resolved: RefCell::new(HashMap::new()),
            slots: RefCell::new(HashMap::new()),
            timeout: settings.timeout,
            allow_private: settings.allow_private,
            per_destination: settings.per_destination,
        }
    }

    /// The cap on requests in flight to `url`'s destination (host and port).
    pub(super) fn slot(&self, url: &WebhookUrl) -> Rc<Semaphore> {
        let key = (url.host(), url.port());
        if let Some(slot) = self.slots.borrow().get(&key) {
            return slot.clone();
        }
        let limit = self.per_destination.max(1);
        let slot = Rc::new(Semaphore::new(limit));
        let mut slots = self.slots.borrow_mut();
        if slots.len() >= SWEEP_AT {
            // Destinations nobody is sending to hold nothing worth keeping.
            slots.retain(|_, s| s.available_permits() < limit);
        }
        slots.insert(key, slot.clone());
        slot
    }

    /// The HTTP client for `access`: the shared one, or the one of its TLS settings
    /// (built at first use on this thread, then kept while it is used).
    pub(super) fn http_for(&self, access: &Access) -> Result<awc::Client, AttemptError> {
        let Some(tls) = &access.tls else {
            return Ok(self.http.clone());
        };
        let config = tls
            .config
            .as_ref()
            .map_err(|e| AttemptError::fatal(e.clone()))?;
        let now = Instant::now();
        let mut clients = self.tls_clients.borrow_mut();
        if let Some(client) = clients.get(&tls.fingerprint) {
            client.used.set(now);
            return Ok(client.http.clone());
        }
        if clients.len() >= TLS_CLIENTS_SWEEP_AT {
            clients.retain(|_, c| now.duration_since(c.used.get()) < TLS_CLIENT_IDLE);
        }
        let http = http_client(self.timeout, Some(config.clone()));
        clients.insert(
            tls.fingerprint,
            TlsClient {
                http: http.clone(),
                used: Cell::new(now),
            },
        );
        Ok(http)
    }

    /// Send `body` to `url`'s host at the addresses the guard checked, the preferred
    /// one first; an address that refuses the connection hands over to the next one.
    pub(super) async fn send_pinned(
        &self,
        url: &WebhookUrl,
        body: bytes::Bytes,
        request: impl Fn(SocketAddr) -> ClientRequest,
    ) -> Result<Response, Pinned> {
        let resolution = self.resolve(url).await.map_err(Pinned::Failed)?;
        let ips = match &resolution.verdict {
            Ok(ips) => ips,
            Err(e) => return Err(Pinned::Refused(e.clone())),
        };
        let port = url.port();
        let first = resolution.preferred.get();
        let mut refused = None;
        for k in 0..ips.len() {
            let i = (first + k) % ips.len();
            match request(SocketAddr::new(ips[i], port))
                .send_body(body.clone())
                .await
            {
                Ok(response) => {
                    resolution.preferred.set(i);
                    return Ok(response);
                }
                // Another address cannot help when the shortage is ours.
                Err(e) if local_cause(&e) => {
                    return Err(Pinned::Failed(AttemptError::local(describe(
                        &e,
                        self.timeout,
                    ))))
                }
                Err(SendRequestError::Connect(ConnectError::Io(e))) => {
                    resolution.preferred.set((i + 1) % ips.len());
                    refused = Some(io_error(&e));
                }
                Err(e) => {
                    return Err(Pinned::Failed(AttemptError::retryable(describe(
                        &e,
                        self.timeout,
                    ))))
                }
            }
        }
        Err(Pinned::Failed(AttemptError::retryable(
            refused.unwrap_or_else(|| "no address to connect to".into()),
        )))
    }

    /// The guard's verdict for this URL's host, from the cache while it is fresh.
    /// Lookup failures are not cached, so the next attempt looks again.
    async fn resolve(&self, url: &WebhookUrl) -> Result<Rc<Resolution>, AttemptError> {
        let host = url.as_url().host_str().unwrap_or_default();
        let now = Instant::now();
        let cached = self.resolved.borrow().get(host).cloned();
        if let Some(hit) = cached.filter(|r| r.expires > now) {
            return Ok(hit);
        }
        let verdict = match url.resolve_checked(self.allow_private).await {
            Ok(addrs) => Ok(addrs.into_iter().map(|a| a.ip()).collect()),
            Err(e @ UrlError::Unresolvable(_)) => {
                return Err(AttemptError::retryable(format!("dns: {e}")))
            }
            Err(e) => Err(e),
        };
        let resolution = Rc::new(Resolution {
            verdict,
            preferred: Cell::new(0),
            expires: now + RESOLVE_TTL,
        });
        let mut cache = self.resolved.borrow_mut();
        if cache.len() >= SWEEP_AT {
            cache.retain(|_, r| r.expires > now);
        }
        cache.insert(host.to_owned(), resolution.clone());
        Ok(resolution)
    }
}

/// What awc answers a sent request with.
pub(super) type Response = ClientResponse<actix_web::dev::Decompress<actix_web::dev::Payload>>;

/// A POST to `uri` over a connection to `addr`, the address the guard checked (Host
/// and TLS name stay the URL's), its answer left as sent.
pub(super) fn pinned_post(http: &awc::Client, uri: &Uri, addr: SocketAddr) -> ClientRequest {
    http.request(Method::POST, uri.clone())
        .address(addr)
        .no_decompress()
}

/// Why a pinned send did not get a response.
pub(super) enum Pinned {
    /// The URL guard refused the destination.
    Refused(UrlError),
    Failed(AttemptError),
}

/// An awc client with our connector settings, trusting what `tls` says (the public
/// roots when `None`).
fn http_client(
    timeout: Duration,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> awc::Client {
    let mut connector = awc::Connector::new()
        // Many deliveries run at once; the per-subscription caps bound them, not the pool.
        .limit(0)
        // An idle connection is closed after IDLE_CONNECTION, under the 5 s many
        // servers (Node.js, Apache) allow, so a delivery never reuses a connection the
        // receiver is closing; idle connections and their buffers also go soon after
        // a burst.
        .conn_keep_alive(IDLE_CONNECTION)
        .timeout(timeout)
        .handshake_timeout(timeout);
    if let Some(tls) = tls {
        connector = connector.rustls_0_23(tls);
    }
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        // Each attempt is bounded by our own timer, which also covers resolution.
        .disable_timeout()
        .finish()
}

pub(super) async fn drain<S>(response: &mut ClientResponse<S>)
where
    S: Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut read = 0usize;
    while let Some(Ok(chunk)) = response.next().await {
        read += chunk.len();
        if read > MAX_DRAIN {
            break;
        }
    }
}

/// The answer's body, up to [`MAX_ANSWER`] (what is past it is not read).
pub(super) async fn read_answer<S>(response: &mut ClientResponse<S>) -> Vec<u8>
where
    S: Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = response.next().await {
        let room = MAX_ANSWER.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    body
}
