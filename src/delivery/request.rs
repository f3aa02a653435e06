//! The request of a delivery attempt: what stays the same across attempts (the
//! URI, the body on the wire, the event's headers), the signatures made anew for
//! each, and the headers every request of the service carries.

use std::{net::SocketAddr, time::SystemTime};

use awc::{
    http::{
        header::{self, HeaderName, HeaderValue},
        Uri,
    },
    ClientRequest,
};
use bytes::Bytes;

use super::{
    answer::Protocol, failure::AttemptError, pinned::pinned_post, signing, target::Target,
};
use crate::domain::event::Event;

pub(super) const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("decnet-webhook/", env!("CARGO_PKG_VERSION")));
pub(super) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(super) const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");
pub(super) const X_SPLUNK_REQUEST_CHANNEL: HeaderName =
    HeaderName::from_static("x-splunk-request-channel");
const X_DECNET_SIGNATURE: HeaderName = HeaderName::from_static("x-decnet-signature");
const X_DECNET_EVENT_ID: HeaderName = HeaderName::from_static("x-decnet-event-id");
const X_DECNET_EVENT_TOPIC: HeaderName = HeaderName::from_static("x-decnet-event-topic");
const X_DECNET_TIMESTAMP: HeaderName = HeaderName::from_static("x-decnet-timestamp");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// Headers set on every request, so the map is sized once (plus the static ones).
const HEADER_COUNT: usize = 13;

/// What stays the same across the attempts of one delivery (of one body: a
/// partial answer prepares the items left anew).
pub(super) struct Prepared {
    pub(super) uri: Uri,
    /// The body on the wire (the protocol may add to the stored body).
    pub(super) body: Bytes,
    /// Items the body holds.
    pub(super) items: usize,
    webhook_id: String,
    event_id: HeaderValue,
    topic: HeaderValue,
    webhook_id_value: HeaderValue,
}

impl Prepared {
    pub(super) fn new(target: &Target, event: &Event) -> Result<Self, AttemptError> {
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
pub(super) struct Signed {
    timestamp: HeaderValue,
    decnet: HeaderValue,
    standard: HeaderValue,
}

impl Signed {
    pub(super) fn new(target: &Target, prepared: &Prepared) -> Result<Self, AttemptError> {
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

/// The POST of one attempt: the event's headers, the signatures, the receiver's own
/// headers and authorization, to the checked `addr`.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
