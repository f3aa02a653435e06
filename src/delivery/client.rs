//! The awc side: guarded, pinned, signed POSTs with the retry schedule around them.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    time::{Duration, Instant, SystemTime},
};

use awc::{
    error::{ConnectError, SendRequestError},
    http::{
        header::{self, HeaderName, HeaderValue},
        Method, Uri,
    },
    ClientRequest, ClientResponse,
};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::{
    access::OAuth2,
    answer::{self, Protocol, Verdict},
    auth::{self, Authorizer, Granted, Token, TokenError},
    outcome::{Attempt, DeliveryOutcome, FailureKind, ItemFailure},
    pacing::Pacing,
    retry::{self, StatusClass},
    settings::DeliverySettings,
    signing,
    target::{Access, Target},
};
use crate::{
    config::Secret,
    db::truncate_chars,
    domain::{
        event::Event,
        webhook_url::{UrlError, WebhookUrl},
    },
};

const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("decnet-webhook/", env!("CARGO_PKG_VERSION")));
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const X_DECNET_SIGNATURE: HeaderName = HeaderName::from_static("x-decnet-signature");
const X_DECNET_EVENT_ID: HeaderName = HeaderName::from_static("x-decnet-event-id");
const X_DECNET_EVENT_TOPIC: HeaderName = HeaderName::from_static("x-decnet-event-topic");
const X_DECNET_TIMESTAMP: HeaderName = HeaderName::from_static("x-decnet-timestamp");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const X_SPLUNK_REQUEST_CHANNEL: HeaderName = HeaderName::from_static("x-splunk-request-channel");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");
/// Headers set on every request, so the map is sized once (plus the static ones).
const HEADER_COUNT: usize = 13;
/// A token endpoint's answer is read up to this size.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
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
const MAX_ERROR_CHARS: usize = 512;
/// Splunk's indexer acknowledgement is asked for after this, then twice as long
/// after each answer that it is not yet in, up to `ACK_POLL_MAX`.
const ACK_POLL_FIRST: Duration = Duration::from_millis(250);
const ACK_POLL_MAX: Duration = Duration::from_secs(10);

/// Sends deliveries. One per thread (awc's client is `!Send`): create one inside each
/// arbiter or actix-web worker; it keeps connections alive per destination.
pub struct DeliveryClient {
    http: awc::Client,
    /// Clients for subscriptions with TLS settings of their own, by their fingerprint.
    tls_clients: RefCell<HashMap<[u8; 32], TlsClient>>,
    settings: DeliverySettings,
    /// Guard verdicts by URL host (the verdict does not depend on the port).
    resolved: RefCell<HashMap<String, Rc<Resolution>>>,
    /// Requests in flight per destination (host, port).
    slots: RefCell<HashMap<(String, u16), Rc<Semaphore>>>,
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

/// Why one attempt did not succeed.
struct AttemptError {
    error: String,
    status: Option<u16>,
    retryable: bool,
    retry_after: Option<Duration>,
    /// For lack of a local resource: retried, never counted against the receiver.
    local: bool,
    /// The token endpoint gave no access token; the receiver was not asked.
    token: bool,
    /// The receiver answered 401 to the OAuth2 token of this generation.
    rejected_token: Option<u64>,
    /// Some items of a multi-item body were refused (see [`Verdict::Items`]).
    items: Option<Split>,
}

/// A partial answer: items to retry, items failed for good (indices into the items
/// sent, each with its error).
struct Split {
    retry: Vec<(usize, String)>,
    failed: Vec<(usize, String)>,
}

impl AttemptError {
    fn retryable(error: String) -> Self {
        Self {
            error,
            status: None,
            retryable: true,
            retry_after: None,
            local: false,
            token: false,
            rejected_token: None,
            items: None,
        }
    }

    fn fatal(error: String) -> Self {
        Self {
            retryable: false,
            ..Self::retryable(error)
        }
    }

    fn local(error: String) -> Self {
        Self {
            local: true,
            ..Self::retryable(error)
        }
    }
}

/// What stays the same across the attempts of one delivery (of one body: a
/// partial answer prepares the items left anew).
struct Prepared {
    uri: Uri,
    /// The body on the wire (the protocol may add to the stored body).
    body: Bytes,
    /// Items the body holds.
    items: usize,
    webhook_id: String,
    event_id: HeaderValue,
    topic: HeaderValue,
    webhook_id_value: HeaderValue,
}

impl Prepared {
    fn new(target: &Target, event: &Event) -> Result<Self, AttemptError> {
        if target.secrets.is_empty() {
            return Err(AttemptError::fatal("no signing secret".into()));
        }
        let url = target.url.as_url();
        // The fragment never goes on the wire.
        let uri = Uri::try_from(&url[..url::Position::AfterQuery])
            .map_err(|e| AttemptError::fatal(format!("invalid url: {e}")))?;
        let value = |what: &str, v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| AttemptError::fatal(format!("{what} is not a valid header value")))
        };
        let webhook_id = format!("msg_{}", event.id);
        Ok(Self {
            uri,
            body: target.protocol.wire_body(&event.body),
            items: event.parts.as_ref().map_or(1, |p| p.len()),
            event_id: value("event id", &event.id)?,
            topic: value("event topic", &event.topic)?,
            webhook_id_value: value("event id", &webhook_id)?,
            webhook_id,
        })
    }
}

/// The headers that change per attempt: the send time and the signatures over it.
struct Signed {
    timestamp: HeaderValue,
    decnet: HeaderValue,
    standard: HeaderValue,
}

impl Signed {
    fn new(target: &Target, prepared: &Prepared) -> Result<Self, AttemptError> {
        let now = unix_now();
        let signatures = signing::sign(&target.secrets, &prepared.webhook_id, now, &prepared.body);
        match (
            HeaderValue::try_from(signatures.decnet),
            HeaderValue::try_from(signatures.standard),
        ) {
            (Ok(decnet), Ok(standard)) => Ok(Self {
                timestamp: HeaderValue::from(now),
                decnet,
                standard,
            }),
            _ => Err(AttemptError::fatal(
                "signature is not a valid header value".into(),
            )),
        }
    }
}

impl DeliveryClient {
    pub fn new(settings: DeliverySettings) -> Self {
        Self {
            http: http_client(&settings, None),
            tls_clients: RefCell::new(HashMap::new()),
            settings,
            resolved: RefCell::new(HashMap::new()),
            slots: RefCell::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// The full retry schedule. `stop` turning true means shutdown: the attempt in
    /// flight finishes, no new attempt starts, and the outcome is the last failure.
    /// The first attempt is always made.
    pub async fn deliver(
        &self,
        target: &Target,
        event: &Event,
        stop: &watch::Receiver<bool>,
    ) -> DeliveryOutcome {
        self.run(target, event, &self.settings.retry_schedule, Some(stop))
            .await
    }

    /// Exactly one attempt, no retries (the API's test ping).
    pub async fn attempt_once(&self, target: &Target, event: &Event) -> DeliveryOutcome {
        self.run(target, event, &[], None).await
    }

    async fn run(
        &self,
        target: &Target,
        event: &Event,
        schedule: &[Duration],
        stop: Option<&watch::Receiver<bool>>,
    ) -> DeliveryOutcome {
        let started = Instant::now();
        let mut log = Vec::with_capacity(1);
        let mut prepared = match Prepared::new(target, event) {
            Ok(p) => p,
            Err(error) => return failed(error, FailureKind::NonRetryable, 1, started, log),
        };
        let mut items = Items::new(event);
        // After a partial answer, the event of the items left to send.
        let mut rest: Option<Event> = None;
        let mut delays = schedule.iter();
        let mut attempts = 0u32;
        let mut token_renewed = false;
        loop {
            let Some(turn) = self.wait_for_pacing(target, stop).await else {
                let error =
                    AttemptError::local("stopped while the receiver's rate limit ran".into());
                return items.settled(failed(error, FailureKind::Shutdown, attempts, started, log));
            };
            attempts += 1;
            let (at, began) = (chrono::Utc::now(), Instant::now());
            let sending = rest.as_ref().unwrap_or(event);
            let attempted = self.attempt(target, sending, &prepared).await;
            // The answer is read and its hold recorded: the next request may go.
            drop(turn);
            let answered = match attempted {
                Ok((status, Some(ack_id))) if stop.is_some() => {
                    match self.await_indexing(target, ack_id, stop).await {
                        Ok(()) => Ok(status),
                        Err(Unconfirmed::Failed(failure)) => Err(AttemptError {
                            status: Some(status),
                            ..failure
                        }),
                        Err(Unconfirmed::Stopped) => {
                            let error = AttemptError::local(
                                "stopped before Splunk confirmed indexing".into(),
                            );
                            let kind = FailureKind::Shutdown;
                            return items.settled(failed(error, kind, attempts, started, log));
                        }
                    }
                }
                Ok((status, _)) => Ok(status),
                Err(failure) => Err(failure),
            };
            let mut failure = match answered {
                Ok(status) => {
                    log.push(Attempt {
                        at,
                        status: Some(status),
                        latency: began.elapsed(),
                        error: None,
                        local: false,
                        token: false,
                    });
                    return items.settled(DeliveryOutcome {
                        failure: None,
                        status: Some(status),
                        error: None,
                        attempts,
                        latency: started.elapsed(),
                        gone: false,
                        attempt_log: log,
                        item_failures: Vec::new(),
                    });
                }
                Err(failure) => failure,
            };
            if let Some(split) = failure.items.take() {
                items.refused(split.failed);
                if split.retry.is_empty() {
                    // Every item is settled: in, or refused for good.
                    items.live.clear();
                    log.push(Attempt {
                        at,
                        status: failure.status,
                        latency: began.elapsed(),
                        error: Some(truncate_chars(&failure.error, MAX_ERROR_CHARS)),
                        local: false,
                        token: failure.token,
                    });
                    return items.settled(failed(
                        failure,
                        FailureKind::NonRetryable,
                        attempts,
                        started,
                        log,
                    ));
                }
                let next = items.keep(&split.retry, event);
                prepared = match Prepared::new(target, &next) {
                    Ok(p) => p,
                    Err(error) => {
                        return items.settled(failed(
                            error,
                            FailureKind::NonRetryable,
                            attempts,
                            started,
                            log,
                        ))
                    }
                };
                rest = Some(next);
            }
            log.push(Attempt {
                at,
                status: failure.status,
                latency: began.elapsed(),
                error: Some(truncate_chars(&failure.error, MAX_ERROR_CHARS)),
                local: failure.local,
                token: failure.token,
            });
            if failure.local {
                warn_local_failure(&failure.error);
            }
            // A refused OAuth2 token is renewed once, and the request sent again at once.
            if let (Some(generation), Some(Authorizer::OAuth2(source)), false) = (
                failure.rejected_token,
                &target.access.authorizer,
                token_renewed,
            ) {
                token_renewed = true;
                source.reject(generation).await;
                tracing::debug!(url = %target.url.as_str(), "receiver refused the OAuth2 token; fetching a new one");
                continue;
            }
            tracing::debug!(
                url = %target.url.as_str(),
                event = %event.id,
                attempt = attempts,
                error = %failure.error,
                "delivery attempt failed"
            );
            let next = if failure.retryable {
                delays.next()
            } else {
                None
            };
            let Some(&scheduled) = next else {
                let kind = if failure.local {
                    FailureKind::Local
                } else if failure.retryable {
                    FailureKind::RetriesExhausted
                } else {
                    FailureKind::NonRetryable
                };
                return items.settled(failed(failure, kind, attempts, started, log));
            };
            if !pause(retry::next_delay(scheduled, failure.retry_after), stop).await {
                return items.settled(failed(
                    failure,
                    FailureKind::Shutdown,
                    attempts,
                    started,
                    log,
                ));
            }
        }
    }

    /// For a receiver that paces its callers (see `pacing`): take the URL's turn, then
    /// wait while the receiver asked for a pause before its next request. The turn is
    /// to be kept until the answer is read. `None` if `stop` turned true meanwhile. A
    /// test ping (no `stop`) is the operator's own request: it goes at once.
    async fn wait_for_pacing(
        &self,
        target: &Target,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Option<Option<OwnedSemaphorePermit>> {
        let (true, Some(stop)) = (target.protocol.paced(), stop) else {
            return Some(None);
        };
        let url = target.url.as_str();
        let turn = Pacing::global().turn(url);
        let mut stopping = stop.clone();
        let turn = tokio::select! {
            turn = turn.acquire_owned() => turn.ok()?,
            _ = stopped(&mut stopping) => return None,
        };
        while let Some(wait) = Pacing::global().wait(url, Instant::now()) {
            tracing::debug!(
                url,
                wait_ms = wait.as_millis() as u64,
                "receiver's rate limit: waiting before the next request"
            );
            if !pause(wait, Some(stop)).await {
                return None;
            }
        }
        Some(Some(turn))
    }

    /// Splunk HEC with indexer acknowledgement: its 200 only says the events were
    /// received. Ask `/services/collector/ack` about `ack_id` until HEC says they are
    /// indexed; not said within the setting's time, the request failed (and is sent
    /// again as any failure is).
    async fn await_indexing(
        &self,
        target: &Target,
        ack_id: u64,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<(), Unconfirmed> {
        let uri = splunk_ack_uri(&target.url).map_err(Unconfirmed::Failed)?;
        let timeout = self.settings.splunk_ack_timeout;
        let deadline = Instant::now() + timeout;
        let mut every = ACK_POLL_FIRST;
        loop {
            let wait = every.min(deadline.saturating_duration_since(Instant::now()));
            if !pause(wait, stop).await {
                return Err(Unconfirmed::Stopped);
            }
            let asked = self.query_ack(target, &uri, ack_id).await;
            match &asked {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(url = %target.url.as_str(), ack_id, error = %e, "Splunk acknowledgement query failed")
                }
            }
            if Instant::now() >= deadline {
                let mut error = format!(
                    "Splunk did not confirm indexing (ackId {ack_id}) within {}",
                    human(timeout)
                );
                if let Err(e) = asked {
                    error.push_str(&format!("; the last query: {e}"));
                }
                return Err(Unconfirmed::Failed(AttemptError::retryable(error)));
            }
            every = (every * 2).min(ACK_POLL_MAX);
        }
    }

    /// One acknowledgement query, sent as deliveries are (guard, pinned address, the
    /// receiver's headers, token and channel), within the attempt timeout.
    async fn query_ack(&self, target: &Target, uri: &Uri, ack_id: u64) -> Result<bool, String> {
        let access = &target.access;
        let http = self.http_for(access).map_err(|e| e.error)?;
        let authorization = match &access.authorizer {
            Some(Authorizer::Fixed(value)) => Some(value),
            _ => None,
        };
        let channel = match &target.protocol {
            Protocol::SplunkHec { channel } => channel.as_ref(),
            _ => None,
        };
        let body = Bytes::from(answer::splunk_ack_query(ack_id));
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let asked = tokio::time::timeout_at(deadline, async {
            let mut response = self
                .send_pinned(&target.url, body, |addr| {
                    let mut request = pinned_post(&http, uri, addr);
                    let headers = request.headers_mut();
                    headers.insert(header::CONTENT_TYPE, APPLICATION_JSON);
                    headers.insert(header::USER_AGENT, USER_AGENT);
                    for (name, value) in &access.headers {
                        headers.insert(name.clone(), value.clone());
                    }
                    if let Some(value) = authorization {
                        headers.insert(header::AUTHORIZATION, value.clone());
                    }
                    if let Some(channel) = channel {
                        headers.insert(X_SPLUNK_REQUEST_CHANNEL, channel.clone());
                    }
                    request
                })
                .await
                .map_err(|e| match e {
                    Pinned::Refused(e) => format!("destination refused: {e}"),
                    Pinned::Failed(f) => f.error,
                })?;
            let status = response.status().as_u16();
            Ok::<_, String>((status, read_answer(&mut response).await))
        })
        .await
        .map_err(|_| format!("timeout after {}", human(self.settings.timeout)))?;
        let (status, body) = asked?;
        if !(200..300).contains(&status) {
            return Err(format!("HTTP {status}"));
        }
        answer::splunk_acked(&body, ack_id).ok_or_else(|| "no answer for its ackId".into())
    }

    /// One attempt: guard, sign, send, read the answer; `Ok` on 2xx, with the status
    /// and, from Splunk HEC with indexer acknowledgement, the answer's `ackId`.
    async fn attempt(
        &self,
        target: &Target,
        event: &Event,
        prepared: &Prepared,
    ) -> Result<(u16, Option<u64>), AttemptError> {
        // Waiting for a slot is not part of the attempt's time.
        let slot = self.slot(&target.url);
        let _permit = slot
            .acquire()
            .await
            .map_err(|_| AttemptError::local("sender is shutting down".into()))?;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let access = &target.access;
        let sent = tokio::time::timeout_at(deadline, async {
            if let Some(invalid) = &access.invalid {
                return Err(AttemptError::fatal(invalid.clone()));
            }
            let http = self.http_for(access)?;
            let token = match &access.authorizer {
                Some(Authorizer::OAuth2(source)) => Some(
                    source
                        .token(|| self.fetch_token(&http, &source.config, deadline))
                        .await
                        .map_err(|e| AttemptError {
                            retryable: e.retryable,
                            token: true,
                            ..AttemptError::retryable(e.message)
                        })?,
                ),
                _ => None,
            };
            let authorization = match (&access.authorizer, &token) {
                (Some(Authorizer::Fixed(value)), _) => Some(value),
                (_, Some(token)) => Some(&token.header),
                _ => None,
            };
            let signed = Signed::new(target, prepared)?;
            let response = self
                .send_pinned(&target.url, prepared.body.clone(), |addr| {
                    self.request(&http, target, event, prepared, &signed, authorization, addr)
                })
                .await
                .map_err(|e| match e {
                    Pinned::Refused(e) => AttemptError::fatal(format!("destination refused: {e}")),
                    Pinned::Failed(f) => f,
                })?;
            Ok((response, token.map(|t: Token| t.generation)))
        })
        .await;
        let (mut response, token) = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(failure)) => return Err(failure),
            Err(_) => {
                return Err(AttemptError::retryable(format!(
                    "timeout after {}",
                    human(self.settings.timeout)
                )))
            }
        };
        let status = response.status().as_u16();
        let retry_after = if retry::honours_retry_after(status) {
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let rejected_token = token.filter(|_| status == 401);
        let refill = target.protocol.pause_after(response.headers());
        if !target.protocol.reads_body() {
            // The status has decided; a slow or endless body only costs the connection.
            let _ = tokio::time::timeout_at(deadline, drain(&mut response)).await;
            return match retry::classify(status) {
                StatusClass::Success => Ok((status, None)),
                StatusClass::Retryable => Err(AttemptError {
                    status: Some(status),
                    retry_after,
                    ..AttemptError::retryable(format!("HTTP {status}"))
                }),
                StatusClass::Final => Err(AttemptError {
                    status: Some(status),
                    retryable: false,
                    rejected_token,
                    ..AttemptError::retryable(format!("non-retryable {status}"))
                }),
            };
        }
        // The protocol reads the answer to judge it (a code, per-item results).
        let body = tokio::time::timeout_at(deadline, read_answer(&mut response))
            .await
            .unwrap_or_default();
        let verdict = target
            .protocol
            .judge(status, retry_after, &body, prepared.items);
        if target.protocol.paced() {
            // A 429's wait holds every request to the receiver, not only this one's retry.
            let asked = match &verdict {
                Verdict::Retry { retry_after, .. } if status == 429 => *retry_after,
                _ => None,
            };
            if let Some(wait) = refill.max(asked) {
                Pacing::global().hold(target.url.as_str(), Instant::now(), wait);
            }
        }
        let ack_id = target.protocol.ack_id(&body);
        judged(verdict, status, prepared.items)
            .map(|status| (status, ack_id))
            .map_err(|e| AttemptError {
                rejected_token,
                ..e
            })
    }

    fn slot(&self, url: &WebhookUrl) -> Rc<Semaphore> {
        let key = (url.host(), url.port());
        if let Some(slot) = self.slots.borrow().get(&key) {
            return slot.clone();
        }
        let limit = self.settings.per_destination.max(1);
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
    fn http_for(&self, access: &Access) -> Result<awc::Client, AttemptError> {
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
        let http = http_client(&self.settings, Some(config.clone()));
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
    async fn send_pinned(
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
                    return Err(Pinned::Failed(AttemptError::local(self.describe(&e))))
                }
                Err(SendRequestError::Connect(ConnectError::Io(e))) => {
                    resolution.preferred.set((i + 1) % ips.len());
                    refused = Some(io_error(&e));
                }
                Err(e) => return Err(Pinned::Failed(AttemptError::retryable(self.describe(&e)))),
            }
        }
        Err(Pinned::Failed(AttemptError::retryable(
            refused.unwrap_or_else(|| "no address to connect to".into()),
        )))
    }

    /// One token request to `config`'s endpoint, through the same guard and pinned
    /// connect as deliveries, within the attempt's `deadline`.
    async fn fetch_token(
        &self,
        http: &awc::Client,
        config: &OAuth2<Secret>,
        deadline: tokio::time::Instant,
    ) -> Result<Granted, TokenError> {
        let url = WebhookUrl::parse(&config.token_url)
            .map_err(|e| TokenError::new(format!("invalid token_url: {e}"), false))?;
        let uri = Uri::try_from(&url.as_url()[..url::Position::AfterQuery])
            .map_err(|e| TokenError::new(format!("invalid token_url: {e}"), false))?;
        let client_auth = auth::client_authorization(config)?;
        let body = bytes::Bytes::from(auth::token_request_body(config));
        let fetch = async {
            let mut response = self
                .send_pinned(&url, body, |addr| {
                    let mut request = pinned_post(http, &uri, addr);
                    let headers = request.headers_mut();
                    headers.insert(header::CONTENT_TYPE, FORM);
                    headers.insert(header::ACCEPT, APPLICATION_JSON);
                    headers.insert(header::USER_AGENT, USER_AGENT);
                    headers.insert(header::AUTHORIZATION, client_auth.clone());
                    request
                })
                .await
                .map_err(|e| match e {
                    Pinned::Refused(e) => {
                        TokenError::new(format!("token endpoint refused: {e}"), false)
                    }
                    Pinned::Failed(f) => {
                        TokenError::new(format!("token endpoint: {}", f.error), f.retryable)
                    }
                })?;
            let status = response.status().as_u16();
            let body = response
                .body()
                .limit(MAX_TOKEN_RESPONSE)
                .await
                .map_err(|e| TokenError::new(format!("token endpoint answer: {e}"), true))?;
            auth::read_token_response(status, &body)
        };
        tokio::time::timeout_at(deadline, fetch)
            .await
            .unwrap_or_else(|_| {
                Err(TokenError::new(
                    format!(
                        "token endpoint timed out after {}",
                        human(self.settings.timeout)
                    ),
                    true,
                ))
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        http: &awc::Client,
        target: &Target,
        event: &Event,
        prepared: &Prepared,
        signed: &Signed,
        authorization: Option<&HeaderValue>,
        addr: SocketAddr,
    ) -> ClientRequest {
        let access = &target.access;
        let mut request = pinned_post(http, &prepared.uri, addr);
        let headers = request.headers_mut();
        headers.reserve(HEADER_COUNT);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(target.content_type),
        );
        headers.insert(header::USER_AGENT, USER_AGENT);
        headers.insert(X_DECNET_EVENT_ID, prepared.event_id.clone());
        headers.insert(X_DECNET_EVENT_TOPIC, prepared.topic.clone());
        headers.insert(WEBHOOK_ID, prepared.webhook_id_value.clone());
        headers.insert(X_DECNET_TIMESTAMP, signed.timestamp.clone());
        headers.insert(WEBHOOK_TIMESTAMP, signed.timestamp.clone());
        headers.insert(X_DECNET_SIGNATURE, signed.decnet.clone());
        headers.insert(WEBHOOK_SIGNATURE, signed.standard.clone());
        headers.reserve(access.headers.len());
        for (name, value) in &access.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.clone());
        }
        if let Protocol::SplunkHec {
            channel: Some(channel),
        } = &target.protocol
        {
            headers.insert(X_SPLUNK_REQUEST_CHANNEL, channel.clone());
        }
        if let Some(trace) = &event.trace {
            // Checked when read off the bus; a value that still does not fit a
            // header is left out rather than failing the delivery.
            if let Ok(v) = HeaderValue::from_str(&trace.traceparent) {
                headers.insert(TRACEPARENT, v);
                if let Some(Ok(state)) = trace.tracestate.as_deref().map(HeaderValue::from_str) {
                    headers.insert(TRACESTATE, state);
                }
            }
        }
        request
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
        let verdict = match url.resolve_checked(self.settings.allow_private).await {
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

    fn describe(&self, err: &SendRequestError) -> String {
        match err {
            SendRequestError::Connect(ConnectError::Timeout) => {
                format!("connect timeout after {}", human(self.settings.timeout))
            }
            SendRequestError::Connect(ConnectError::Io(e)) => io_error(e),
            // awc's wording for a connection the receiver closed without answering.
            SendRequestError::Connect(ConnectError::Disconnected) => {
                "connection closed by the receiver without a response".into()
            }
            SendRequestError::Connect(e) => format!("connect: {e}"),
            SendRequestError::Send(e) => format!("send: {}", io_error(e)),
            // A TLS alert after the handshake (a client certificate the receiver
            // wanted and did not get, in TLS 1.3) surfaces on reading the answer.
            SendRequestError::Response(actix_web::error::ParseError::Io(e))
                if e.kind() == io::ErrorKind::InvalidData =>
            {
                io_error(e)
            }
            SendRequestError::Response(e) => format!("bad response: {e}"),
            SendRequestError::Timeout => format!("timeout after {}", human(self.settings.timeout)),
            other => other.to_string(),
        }
    }
}

/// What awc answers a sent request with.
type Response = ClientResponse<actix_web::dev::Decompress<actix_web::dev::Payload>>;

/// A POST to `uri` over a connection to `addr`, the address the guard checked (Host
/// and TLS name stay the URL's), its answer left as sent.
fn pinned_post(http: &awc::Client, uri: &Uri, addr: SocketAddr) -> ClientRequest {
    http.request(Method::POST, uri.clone())
        .address(addr)
        .no_decompress()
}

/// Why Splunk did not confirm indexing a request's events.
enum Unconfirmed {
    Failed(AttemptError),
    /// The worker is stopping.
    Stopped,
}

/// HEC's acknowledgement endpoint beside the one events go to (the same
/// `…/services/collector` prefix, which a proxy may have put under a path of its own).
fn splunk_ack_uri(url: &WebhookUrl) -> Result<Uri, AttemptError> {
    let mut ack = url.as_url().clone();
    let base = match ack.path().find("/services/collector") {
        Some(at) => ack.path()[..at].to_owned(),
        None => String::new(),
    };
    ack.set_path(&format!("{base}/services/collector/ack"));
    ack.set_query(None);
    ack.set_fragment(None);
    Uri::try_from(ack.as_str())
        .map_err(|e| AttemptError::fatal(format!("invalid acknowledgement url: {e}")))
}

/// Why a pinned send did not get a response.
enum Pinned {
    /// The URL guard refused the destination.
    Refused(UrlError),
    Failed(AttemptError),
}

/// An awc client with our connector settings, trusting what `tls` says (the public
/// roots when `None`).
fn http_client(
    settings: &DeliverySettings,
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
        .timeout(settings.timeout)
        .handshake_timeout(settings.timeout);
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

/// Whether a request failed for lack of a local resource rather than because of the
/// receiver or the network: out of descriptors (the process's or the system's), of
/// socket buffers or memory, or of ephemeral ports.
fn local_cause(err: &SendRequestError) -> bool {
    match err {
        SendRequestError::Connect(ConnectError::Io(e)) | SendRequestError::Send(e) => local_io(e),
        _ => false,
    }
}

fn local_io(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// How often a local failure is logged at most; the ones in between are counted.
const LOCAL_WARN_EVERY: Duration = Duration::from_secs(10);

/// Log a local failure, at most once per [`LOCAL_WARN_EVERY`] for the process: when
/// descriptors run out, every delivery fails at once.
fn warn_local_failure(error: &str) {
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        LazyLock, Mutex, PoisonError,
    };
    static LAST: LazyLock<Mutex<Option<Instant>>> = LazyLock::new(Mutex::default);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if last.is_some_and(|t| t.elapsed() < LOCAL_WARN_EVERY) {
        SINCE.fetch_add(1, Ordering::Relaxed);
        return;
    }
    *last = Some(Instant::now());
    let unlogged = SINCE.swap(0, Ordering::Relaxed);
    tracing::warn!(
        %error,
        unlogged,
        "delivery attempt failed for lack of local resources, not the receiver's fault: \
         retried on the schedule, never counted toward its circuit breaker"
    );
}

fn failed(
    failure: AttemptError,
    kind: FailureKind,
    attempts: u32,
    started: Instant,
    attempt_log: Vec<Attempt>,
) -> DeliveryOutcome {
    DeliveryOutcome {
        failure: Some(kind),
        status: failure.status,
        gone: failure.status == Some(410),
        error: Some(truncate_chars(&failure.error, MAX_ERROR_CHARS)),
        attempts,
        latency: started.elapsed(),
        attempt_log,
        item_failures: Vec::new(),
    }
}

/// A verdict as the attempt's result. A partial answer to a body of one item
/// (nothing to split) is that item's fate.
fn judged(verdict: Verdict, status: u16, items: usize) -> Result<u16, AttemptError> {
    let error = |error: String, retryable: bool, retry_after: Option<Duration>| AttemptError {
        status: Some(status),
        retryable,
        retry_after,
        ..AttemptError::retryable(error)
    };
    match verdict {
        Verdict::Delivered => Ok(status),
        Verdict::Retry {
            error: e,
            retry_after,
        } => Err(error(e, true, retry_after)),
        Verdict::Fail { error: e } => Err(error(e, false, None)),
        Verdict::Items { retry, failed } if items <= 1 => match (failed.first(), retry.first()) {
            (Some((_, e)), _) => Err(error(e.clone(), false, None)),
            (None, Some((_, e))) => Err(error(e.clone(), true, None)),
            (None, None) => Ok(status),
        },
        Verdict::Items { retry, failed } => {
            let first = retry.first().or(failed.first()).map(|(_, e)| e.clone());
            let summary = format!(
                "{} of {items} items refused, {} to retry; first: {}",
                retry.len() + failed.len(),
                retry.len(),
                first.unwrap_or_default()
            );
            Err(AttemptError {
                items: Some(Split { retry, failed }),
                ..error(summary, true, None)
            })
        }
    }
}

/// The fates of a multi-item body's items across the attempts of one delivery.
struct Items {
    total: usize,
    /// Original indices of the items still to send, in order.
    live: Vec<usize>,
    /// Items refused for good, with their errors.
    refused: Vec<ItemFailure>,
}

impl Items {
    fn new(event: &Event) -> Self {
        let total = event.parts.as_ref().map_or(1, |p| p.len());
        Self {
            total,
            live: (0..total).collect(),
            refused: Vec::new(),
        }
    }

    /// Items of the last body sent that failed for good.
    fn refused(&mut self, failed: Vec<(usize, String)>) {
        for (i, error) in failed {
            if let Some(&index) = self.live.get(i) {
                self.refused.push(ItemFailure {
                    index,
                    kind: FailureKind::NonRetryable,
                    error: truncate_chars(&error, MAX_ERROR_CHARS),
                });
            }
        }
    }

    /// Keep only the items `retry` names (indices into the last body sent); the
    /// event of their body.
    fn keep(&mut self, retry: &[(usize, String)], event: &Event) -> Event {
        self.live = retry
            .iter()
            .filter_map(|(i, _)| self.live.get(*i).copied())
            .collect();
        let parts: Vec<Bytes> = match &event.parts {
            Some(parts) => self
                .live
                .iter()
                .filter_map(|&i| parts.get(i).cloned())
                .collect(),
            None => vec![event.body.clone()],
        };
        let mut next = Event::outgoing(
            event.id.clone(),
            event.topic.clone(),
            Bytes::from(parts.concat()),
        );
        next.trace = event.trace.clone();
        next.parts = Some(parts.into());
        next
    }

    /// The delivery's outcome with the items' fates: when some items went in, the
    /// delivery succeeded and the others are item failures (those still live with
    /// the delivery's last error); when none did, it failed, each refused item
    /// keeping its own error.
    fn settled(self, mut outcome: DeliveryOutcome) -> DeliveryOutcome {
        if self.refused.is_empty() && (outcome.ok() || self.live.len() == self.total) {
            return outcome;
        }
        let mut failures = self.refused;
        if let Some(kind) = outcome.failure {
            let error = outcome.error.clone().unwrap_or_default();
            failures.extend(self.live.iter().map(|&index| ItemFailure {
                index,
                kind,
                error: error.clone(),
            }));
        }
        let delivered = self.total.saturating_sub(failures.len());
        if delivered > 0 {
            outcome.failure = None;
            outcome.gone = false;
        } else if outcome.failure.is_none() {
            outcome.failure = Some(FailureKind::NonRetryable);
        }
        failures.sort_by_key(|f| f.index);
        outcome.item_failures = failures;
        outcome
    }
}

/// Wait `delay`, unless `stop` turns true first; `false` means stop.
async fn pause(delay: Duration, stop: Option<&watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        tokio::time::sleep(delay).await;
        return true;
    };
    if *stop.borrow() {
        return false;
    }
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => !*stop.borrow(),
        _ = stopped(&mut stop) => false,
    }
}

/// Resolves once `stop` is true; never if its sender is gone without saying so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn drain<S>(response: &mut ClientResponse<S>)
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
async fn read_answer<S>(response: &mut ClientResponse<S>) -> Vec<u8>
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

fn io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::TimedOut => "connect timed out".into(),
        // rustls reports handshake and certificate problems as invalid data.
        io::ErrorKind::InvalidData => format!("tls: {e}"),
        _ => format!("connect: {e}"),
    }
}

/// `10s`, `1.5s` or `250ms`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn local_resource_failures_are_told_apart() {
        let os = |code| io::Error::from_raw_os_error(code);
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(
                local_cause(&SendRequestError::Connect(ConnectError::Io(os(code)))),
                "{code}"
            );
            assert!(local_cause(&SendRequestError::Send(os(code))), "{code}");
        }
        for code in [
            libc::ECONNREFUSED,
            libc::ECONNRESET,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
        ] {
            assert!(
                !local_cause(&SendRequestError::Connect(ConnectError::Io(os(code)))),
                "{code}"
            );
        }
        assert!(!local_cause(&SendRequestError::Connect(
            ConnectError::Timeout
        )));
        assert!(!local_cause(&SendRequestError::Timeout));
        // Without an OS error code there is no telling it was ours.
        let bare = io::Error::from(io::ErrorKind::OutOfMemory);
        assert!(!local_cause(&SendRequestError::Send(bare)));
    }

    #[test]
    fn splunk_acknowledgements_are_asked_beside_the_event_endpoint() {
        let ack = |url: &str| {
            splunk_ack_uri(&WebhookUrl::parse(url).unwrap())
                .ok()
                .map(|u| u.to_string())
        };
        assert_eq!(
            ack("https://splunk.example.org:8088/services/collector/event").as_deref(),
            Some("https://splunk.example.org:8088/services/collector/ack")
        );
        assert_eq!(
            ack("https://proxy.example.org/splunk/services/collector/event?channel=x#f").as_deref(),
            Some("https://proxy.example.org/splunk/services/collector/ack")
        );
        assert_eq!(
            ack("https://splunk.example.org/services/collector").as_deref(),
            Some("https://splunk.example.org/services/collector/ack")
        );
        assert_eq!(
            ack("https://splunk.example.org/hec").as_deref(),
            Some("https://splunk.example.org/services/collector/ack")
        );
    }

    #[actix_rt::test]
    async fn a_local_failure_is_retried_and_ends_as_local() {
        let settings = DeliverySettings {
            timeout: Duration::from_secs(1),
            retry_schedule: vec![Duration::from_millis(1)],
            allow_private: true,
            per_destination: 1,
            splunk_ack_timeout: Duration::from_secs(300),
        };
        let client = DeliveryClient::new(settings);
        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
        // A closed slot is how a sender that is shutting down answers.
        client.slot(&url).close();
        let target = Target::new(url, vec![crate::config::Secret::new("s")]);
        let event = Event::outgoing(
            "e1".into(),
            "attacker.x".into(),
            bytes::Bytes::from_static(b"{}"),
        );
        let (_tx, stop) = watch::channel(false);
        let outcome = client.deliver(&target, &event, &stop).await;
        assert_eq!(outcome.failure, Some(FailureKind::Local));
        assert_eq!(outcome.attempts, 2, "retried on the schedule");
        assert!(outcome.attempt_log.iter().all(|a| a.local));
        assert_eq!(outcome.error.as_deref(), Some("sender is shutting down"));
    }

    #[test]
    fn io_errors_are_short() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_error(&refused), "connection refused");
    }
}
