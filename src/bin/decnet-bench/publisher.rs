//! The load generator: async-nats on a thread and runtime of its own (as a separate
//! process would be), publishing as fast as the server accepts or at a fixed rate,
//! on core NATS or into a JetStream stream (each publish acknowledged).

use std::{
    ops::Range,
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::{clock, report::BenchError};

/// What to publish: events numbered `seqs` on `subject`.
#[derive(Clone, Debug)]
pub struct Plan {
    pub subject: String,
    pub seqs: Range<usize>,
    /// Events per second; `None` publishes flat out.
    pub rate: Option<f64>,
}

/// How the events enter the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Core NATS publish (fire and forget, then a round trip to the server).
    Core,
    /// JetStream publish: counted once the stream acknowledged it stored the event.
    JetStream,
    /// JetStream publish as a publisher that must lose nothing does it: each event
    /// with a message id, published again until the stream acknowledges it (through
    /// a leader election).
    JetStreamRetrying,
}

/// JetStream publishes awaiting their acknowledgement at once: pipelined, so the
/// publish rate is the server's, not one round trip per event.
const ACK_WINDOW: usize = 1024;

#[derive(Debug)]
pub struct Published {
    pub count: usize,
    pub elapsed: Duration,
}

/// Publish the plan on core NATS and flush; resolves when the server has everything.
pub async fn publish(url: String, plan: Plan) -> Result<Published, BenchError> {
    publish_via(url, plan, Via::Core).await
}

/// Publish the plan `via` core NATS or JetStream; resolves when the server has
/// everything (JetStream: every event acknowledged as stored).
pub async fn publish_via(url: String, plan: Plan, via: Via) -> Result<Published, BenchError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BenchError::setup("publisher runtime", e))
                .and_then(|rt| match via {
                    Via::Core => rt.block_on(run(&url, plan)),
                    Via::JetStream => rt.block_on(run_jetstream(&url, plan)),
                    Via::JetStreamRetrying => rt.block_on(run_retrying(&url, plan)),
                });
            let _ = tx.send(result);
        })
        .map_err(|e| BenchError::setup("publisher thread", e))?;
    rx.await
        .map_err(|_| BenchError("publisher thread died".into()))?
}

async fn run(url: &str, plan: Plan) -> Result<Published, BenchError> {
    let client = async_nats::connect(url)
        .await
        .map_err(|e| BenchError::setup("publisher cannot connect", e))?;
    let started = Instant::now();
    let tokio_start = tokio::time::Instant::now();
    let mut count = 0;
    for (i, seq) in plan.seqs.clone().enumerate() {
        if let Some(rate) = plan.rate {
            let due = tokio_start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        client
            .publish(plan.subject.clone(), event(seq))
            .await
            .map_err(|e| BenchError::setup("publish", e))?;
        count += 1;
    }
    settle_with_server(&client).await?;
    Ok(Published {
        count,
        elapsed: started.elapsed(),
    })
}

async fn run_jetstream(url: &str, plan: Plan) -> Result<Published, BenchError> {
    use futures::{stream::FuturesUnordered, StreamExt as _};
    use std::future::IntoFuture as _;
    let client = async_nats::connect(url)
        .await
        .map_err(|e| BenchError::setup("publisher cannot connect", e))?;
    let js = async_nats::jetstream::new(client);
    let started = Instant::now();
    let tokio_start = tokio::time::Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut count = 0;
    let acked = |r: Result<_, async_nats::jetstream::context::PublishError>| {
        r.map(|_| 1)
            .map_err(|e| BenchError::setup("JetStream publish ack", e))
    };
    for (i, seq) in plan.seqs.clone().enumerate() {
        if let Some(rate) = plan.rate {
            let due = tokio_start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        let ack = js
            .publish(plan.subject.clone(), event(seq))
            .await
            .map_err(|e| BenchError::setup("JetStream publish", e))?;
        pending.push(ack.into_future());
        if pending.len() >= ACK_WINDOW {
            if let Some(r) = pending.next().await {
                count += acked(r)?;
            }
        }
    }
    while let Some(r) = pending.next().await {
        count += acked(r)?;
    }
    Ok(Published {
        count,
        elapsed: started.elapsed(),
    })
}

/// How long one event may take to be stored, retries included.
const RETRY_FOR: Duration = Duration::from_secs(60);

type Acked = futures::future::BoxFuture<'static, (usize, Bytes, bool)>;

/// Publish `body` as event `seq` (its message id), retrying the send itself until
/// `RETRY_FOR` passes; the returned future tells whether the stream stored it.
async fn send_once(
    js: &async_nats::jetstream::Context,
    subject: &str,
    seq: usize,
    body: Bytes,
) -> Result<Acked, BenchError> {
    use async_nats::jetstream::message::PublishMessage;
    use futures::FutureExt as _;
    use std::future::IntoFuture as _;
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        let publish = PublishMessage::build()
            .payload(body.clone())
            .message_id(seq.to_string());
        match js.send_publish(subject.to_owned(), publish).await {
            Ok(ack) => {
                return Ok(ack
                    .into_future()
                    .map(move |r| (seq, body, r.is_ok()))
                    .boxed())
            }
            Err(e) if Instant::now() > deadline => {
                return Err(BenchError::setup("JetStream publish", e))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn run_retrying(url: &str, plan: Plan) -> Result<Published, BenchError> {
    use futures::{stream::FuturesUnordered, StreamExt as _};
    // Every server of a comma-separated list.
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .filter_map(|u| u.trim().parse().ok())
        .collect();
    let client = async_nats::connect(servers)
        .await
        .map_err(|e| BenchError::setup("publisher cannot connect", e))?;
    let mut js = async_nats::jetstream::new(client);
    // An acknowledgement lost in a leader election is given up soon and the event
    // published again (its message id keeps it stored once).
    js.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let tokio_start = tokio::time::Instant::now();
    let mut pending: FuturesUnordered<Acked> = FuturesUnordered::new();
    let mut count = 0;
    let mut seqs = plan.seqs.clone().enumerate();
    loop {
        // Keep the window full while there is something to publish.
        if pending.len() < ACK_WINDOW {
            if let Some((i, seq)) = seqs.next() {
                if let Some(rate) = plan.rate {
                    let due = tokio_start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due).await;
                }
                pending.push(send_once(&js, &plan.subject, seq, event(seq)).await?);
                continue;
            }
        }
        let Some((seq, body, stored)) = pending.next().await else {
            break;
        };
        if stored {
            count += 1;
        } else {
            // Not stored (or not known to be): again, under the same message id.
            pending.push(send_once(&js, &plan.subject, seq, body).await?);
        }
        if started.elapsed() > RETRY_FOR * 10 {
            return Err(BenchError("the stream never stored every event".into()));
        }
    }
    Ok(Published {
        count,
        elapsed: started.elapsed(),
    })
}

/// Return once the server has processed every publish before: a flush only empties
/// the client's buffer, and closing a socket with unread input resets it, which can
/// discard what the server has not read yet. The server handles one connection's
/// messages in order, so our own message coming back proves the rest were routed.
async fn settle_with_server(client: &async_nats::Client) -> Result<(), BenchError> {
    use futures::StreamExt as _;
    let fail = |e: &dyn std::fmt::Display| BenchError::setup("publisher round trip", e);
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| fail(&e))?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(|e| fail(&e))?;
    client.flush().await.map_err(|e| fail(&e))?;
    match tokio::time::timeout(Duration::from_secs(30), echo.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(BenchError(
            "the server did not echo the publisher's marker".into(),
        )),
    }
}

/// A DECNET-like event; its id is the sequence number the receiver's ledger expects.
fn event(seq: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"{seq}","type":"bench","payload":{{"decky":"decky-01","service":"ssh","src_ip":"203.0.113.7","sent_us":{}}}}}"#,
        clock::now_us()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_with_the_sequence_as_id() {
        let v: serde_json::Value = serde_json::from_slice(&event(42)).unwrap();
        assert_eq!(v["id"], "42");
        assert!(v["payload"]["sent_us"].is_u64());
    }
}
