//! The receiver's ceiling: POSTs from one awc client at a fixed concurrency, with the
//! worker's headers and a body of the same shape, on a thread of its own.

use std::{cell::Cell, rc::Rc, time::Instant};

use awc::http::header::{HeaderName, HeaderValue};

use super::{clock, report::BenchError};

/// What one raw run measured, from the first send to the last answer.
pub struct RawRun {
    /// Wall time (s).
    pub elapsed_s: f64,
    /// CPU time of the client's thread (s), `None` where the clock cannot be read:
    /// the client alone, without the receiver.
    pub client_cpu_s: Option<f64>,
}

/// POST `n` requests (ids `0..n`) to `url` with `concurrency` in flight.
pub async fn measure(url: String, n: usize, concurrency: usize) -> Result<RawRun, BenchError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-raw-client".into())
        .spawn(move || {
            let result = actix_rt::System::new().block_on(run(url, n, concurrency));
            let _ = tx.send(result);
        })
        .map_err(|e| BenchError::setup("raw client thread", e))?;
    rx.await
        .map_err(|_| BenchError("raw client thread died".into()))?
}

async fn run(url: String, n: usize, concurrency: usize) -> Result<RawRun, BenchError> {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .disable_redirects()
        .finish();
    let next = Rc::new(Cell::new(0usize));
    // Every future of the client runs on this thread: its CPU time is the client's.
    let cpu0 = thread_cpu_s();
    let started = Instant::now();
    let loops = (0..concurrency.max(1)).map(|_| {
        let (client, next, url) = (client.clone(), next.clone(), url.clone());
        async move {
            loop {
                let seq = next.get();
                if seq >= n {
                    return Ok::<_, BenchError>(());
                }
                next.set(seq + 1);
                post(&client, &url, seq).await?;
            }
        }
    });
    futures::future::try_join_all(loops).await?;
    let elapsed_s = started.elapsed().as_secs_f64();
    let client_cpu_s = match (cpu0, thread_cpu_s()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(RawRun {
        elapsed_s,
        client_cpu_s,
    })
}

/// The calling thread's CPU time so far (user and system, s).
fn thread_cpu_s() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

async fn post(client: &awc::Client, url: &str, seq: usize) -> Result<(), BenchError> {
    let body = format!(
        r#"{{"id":"{seq}","payload":{{"decky":"decky-01","sent_us":{},"service":"ssh","src_ip":"203.0.113.7"}},"topic":"bench.raw","ts":"2026-04-24T10:00:00.123456+00:00","type":"bench","v":1}}"#,
        clock::now_us()
    );
    let id = HeaderValue::from(seq);
    let signature = HeaderValue::from_static(
        "sha256=0000000000000000000000000000000000000000000000000000000000000000",
    );
    let mut req = client
        .post(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("user-agent", "decnet-bench"));
    for (name, value) in [
        ("x-decnet-event-id", id.clone()),
        (
            "x-decnet-event-topic",
            HeaderValue::from_static("bench.raw"),
        ),
        ("x-decnet-timestamp", HeaderValue::from_static("1777024800")),
        ("x-decnet-signature", signature.clone()),
        ("webhook-id", id),
        ("webhook-timestamp", HeaderValue::from_static("1777024800")),
        ("webhook-signature", signature),
    ] {
        req = req.insert_header((HeaderName::from_static(name), value));
    }
    let mut resp = req
        .send_body(body)
        .await
        .map_err(|e| BenchError::setup("raw POST", e))?;
    // Read the (empty) body so the connection goes back to the pool.
    resp.body()
        .await
        .map_err(|e| BenchError::setup("raw response", e))?;
    if !resp.status().is_success() {
        return Err(BenchError(format!("raw POST answered {}", resp.status())));
    }
    Ok(())
}
