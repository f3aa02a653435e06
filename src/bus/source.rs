//! Where pattern actors get their events: a message as it comes off the bus, its
//! acknowledgement (durable mode), and the source of event streams.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{future::BoxFuture, stream::BoxStream, FutureExt, StreamExt};

use super::{acks::Acker, connection::Bus};
use crate::domain::TraceContext;

/// A message as it comes off the bus, independent of the client library.
#[derive(Clone, Debug)]
pub struct BusMessage {
    pub subject: async_nats::Subject,
    pub payload: Bytes,
    /// The `Nats-Msg-Id` header, if any.
    pub msg_id: Option<String>,
    /// The `traceparent`/`tracestate` headers, when well-formed.
    pub trace: Option<Arc<TraceContext>>,
    /// The stream sequence (durable mode), to deliver an event once per subscription.
    pub seq: Option<u64>,
    /// Acknowledges it once settled (durable mode).
    pub ack: Option<Acker>,
}

impl From<async_nats::Message> for BusMessage {
    fn from(m: async_nats::Message) -> Self {
        let msg_id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned());
        Self {
            subject: m.subject,
            trace: trace_of(m.headers.as_ref()),
            payload: m.payload,
            msg_id,
            seq: None,
            ack: None,
        }
    }
}

/// The trace context a message's headers carry, if well-formed.
pub(super) fn trace_of(headers: Option<&async_nats::HeaderMap>) -> Option<Arc<TraceContext>> {
    let headers = headers?;
    let get = |name: &str| headers.get(name).map(|v| v.as_str());
    TraceContext::from_headers(get("traceparent"), get("tracestate")).map(Arc::new)
}

type SubscribeFn = dyn Fn(String, String) -> BoxFuture<'static, Result<BoxStream<'static, BusMessage>, String>>
    + Send
    + Sync;
type FlushFn = dyn Fn() -> BoxFuture<'static, ()> + Send + Sync;

/// Where PatternActors get their streams: the bus, nothing (bus disabled), or, in
/// tests, any function returning a stream.
#[derive(Clone)]
pub struct PatternSource {
    subscribe: Arc<SubscribeFn>,
    flush: Arc<FlushFn>,
}

impl PatternSource {
    pub fn from_fn(
        f: impl Fn(String, String) -> BoxFuture<'static, Result<BoxStream<'static, BusMessage>, String>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            subscribe: Arc::new(f),
            flush: Arc::new(|| async {}.boxed()),
        }
    }

    /// Any subscribe and flush functions.
    pub fn with_flush(
        subscribe: impl Fn(String, String) -> BoxFuture<'static, Result<BoxStream<'static, BusMessage>, String>>
            + Send
            + Sync
            + 'static,
        flush: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        Self {
            subscribe: Arc::new(subscribe),
            flush: Arc::new(flush),
        }
    }

    /// Queue-subscribe on the bus; with no bus, a stream that never yields.
    pub fn core(bus: &Bus) -> Self {
        match bus.client().cloned() {
            Some(client) => {
                let flusher = client.clone();
                Self {
                    subscribe: Arc::new(move |pattern, group| {
                        let client = client.clone();
                        async move {
                            client
                                .queue_subscribe(pattern, group)
                                .await
                                .map(|s| s.map(BusMessage::from).boxed())
                                .map_err(|e| e.to_string())
                        }
                        .boxed()
                    }),
                    // A round trip proves the server has the subscriptions; bounded,
                    // since a bus that is down must not hold the worker.
                    flush: Arc::new(move || {
                        let client = flusher.clone();
                        async move {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
                        }
                        .boxed()
                    }),
                }
            }
            None => Self::from_fn(|_, _| async { Ok(futures::stream::pending().boxed()) }.boxed()),
        }
    }

    pub async fn subscribe(
        &self,
        pattern: &str,
        group: &str,
    ) -> Result<BoxStream<'static, BusMessage>, String> {
        (self.subscribe)(pattern.to_owned(), group.to_owned()).await
    }

    /// Resolves once the bus server has seen every subscription made so far.
    pub async fn flush(&self) {
        (self.flush)().await
    }
}
