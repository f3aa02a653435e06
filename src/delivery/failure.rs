//! Why an attempt did not succeed, and the delivery outcome a failure becomes: the
//! receiver's answer judged, a transport error described in one line, and failures
//! for lack of a local resource told apart from the receiver's.

use std::{
    io,
    time::{Duration, Instant},
};

use awc::error::{ConnectError, SendRequestError};

use super::{
    answer::Verdict,
    outcome::{Attempt, DeliveryOutcome, FailureKind},
};
use crate::db::truncate_chars;

/// An error kept in the delivery log is cut to this many characters.
pub(super) const MAX_ERROR_CHARS: usize = 512;

/// Why one attempt did not succeed.
pub(super) struct AttemptError {
    pub(super) error: String,
    pub(super) status: Option<u16>,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
    /// For lack of a local resource: retried, never counted against the receiver.
    pub(super) local: bool,
    /// The token endpoint gave no access token; the receiver was not asked.
    pub(super) token: bool,
    /// The receiver answered 401 to the OAuth2 token of this generation.
    pub(super) rejected_token: Option<u64>,
    /// Some items of a multi-item body were refused (see [`Verdict::Items`]).
    pub(super) items: Option<Split>,
}

/// A partial answer: items to retry, items failed for good (indices into the items
/// sent, each with its error).
pub(super) struct Split {
    pub(super) retry: Vec<(usize, String)>,
    pub(super) failed: Vec<(usize, String)>,
}

impl AttemptError {
    pub(super) fn retryable(error: String) -> Self {
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

    pub(super) fn fatal(error: String) -> Self {
        Self {
            retryable: false,
            ..Self::retryable(error)
        }
    }

    pub(super) fn local(error: String) -> Self {
        Self {
            local: true,
            ..Self::retryable(error)
        }
    }
}

/// The outcome of a delivery that ended with `failure`.
pub(super) fn failed(
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

/// A verdict as the attempt's result: the status, and the `ackId` to confirm when the
/// answer is not yet the last word. A partial answer to a body of one item (nothing to
/// split) is that item's fate.
pub(super) fn judged(
    verdict: Verdict,
    status: u16,
    items: usize,
) -> Result<(u16, Option<u64>), AttemptError> {
    let error = |error: String, retryable: bool, retry_after: Option<Duration>| AttemptError {
        status: Some(status),
        retryable,
        retry_after,
        ..AttemptError::retryable(error)
    };
    match verdict {
        Verdict::Delivered => Ok((status, None)),
        Verdict::Received { ack_id } => Ok((status, Some(ack_id))),
        Verdict::Retry {
            error: e,
            retry_after,
        } => Err(error(e, true, retry_after)),
        Verdict::Fail { error: e } => Err(error(e, false, None)),
        Verdict::Items { retry, failed } if items <= 1 => match (failed.first(), retry.first()) {
            (Some((_, e)), _) => Err(error(e.clone(), false, None)),
            (None, Some((_, e))) => Err(error(e.clone(), true, None)),
            (None, None) => Ok((status, None)),
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

/// What went wrong with a request, in a line for the delivery log.
pub(super) fn describe(err: &SendRequestError, timeout: Duration) -> String {
    match err {
        SendRequestError::Connect(ConnectError::Timeout) => {
            format!("connect timeout after {}", human(timeout))
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
        SendRequestError::Timeout => format!("timeout after {}", human(timeout)),
        other => other.to_string(),
    }
}

/// Whether a request failed for lack of a local resource rather than because of the
/// receiver or the network: out of descriptors (the process's or the system's), of
/// socket buffers or memory, or of ephemeral ports.
pub(super) fn local_cause(err: &SendRequestError) -> bool {
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
pub(super) fn warn_local_failure(error: &str) {
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

pub(super) fn io_error(e: &io::Error) -> String {
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
pub(super) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
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
    fn io_errors_are_short() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_error(&refused), "connection refused");
    }
}
