//! What every HTTP listener does against slow and numerous clients, so none can hold
//! a connection (and so a descriptor) for ever, nor take the descriptors deliveries,
//! the database and the bus need:
//!
//! - a deadline for the request head (actix-web's client request timeout), counted
//!   from the connection's start;
//! - a deadline for the body, counted from the head ([`BodyDeadline`]);
//! - one request per connection: on a kept-alive connection actix-web gives the next
//!   head no deadline at all;
//! - a bound on open connections; the ones past it wait in the kernel's accept queue,
//!   where they cost the process no descriptor.

use std::{
    cell::RefCell,
    future::{ready, Future, Ready},
    io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{
    body::{BodySize, BoxBody, MessageBody},
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform},
    error::PayloadError,
    web::Bytes,
    Error, HttpMessage as _,
};
use futures::{future::LocalBoxFuture, Stream};

/// How long a connection being closed may take to shut down cleanly.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections `/metrics` keeps open on a listener of its own: scrapers need few.
pub const METRICS_MAX_CONNECTIONS: usize = 64;
/// The API's default bound, however high the open-file limit: an admin API and its
/// page need far fewer, and each connection costs memory as well as a descriptor.
const DEFAULT_MAX_CONNECTIONS_CAP: usize = 4096;
/// Below this open-file limit start-up warns: deliveries to many receivers need more.
pub const LOW_OPEN_FILES: u64 = 4096;

/// Connections waiting to be accepted once the bound is reached, as actix-web's own
/// `bind` would queue (the kernel caps it at `net.core.somaxconn`). A listener bound
/// by the standard library queues only 128; past the queue, new connections wait on
/// their SYN retries instead, for seconds.
pub const ACCEPT_BACKLOG: i32 = 2048;

/// Let `listener` queue [`ACCEPT_BACKLOG`] connections.
pub fn set_backlog(listener: &std::net::TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: listen on a socket this listener owns; on one already listening, Linux
    // only changes the queue's length.
    if unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The process's soft limit on open files (`RLIMIT_NOFILE`); `None` when unlimited
/// or unknown.
pub fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    // `rlim_t` is narrower than u64 on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let current = limit.rlim_cur as u64;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(current)
}

/// The API's bound when `DECNET_API_MAX_CONNECTIONS` is not set: half the open-file
/// limit, so the other half stays for deliveries, the database and the bus; at most
/// [`DEFAULT_MAX_CONNECTIONS_CAP`].
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    match open_files {
        Some(n) => usize::try_from(n / 2)
            .unwrap_or(usize::MAX)
            .clamp(1, DEFAULT_MAX_CONNECTIONS_CAP),
        None => DEFAULT_MAX_CONNECTIONS_CAP,
    }
}

/// What start-up should warn about the open-file limit: too low for deliveries to many
/// receivers, or too low for the API connections asked for (`api_max_connections`,
/// when set and the API runs).
pub fn open_files_warnings(
    open_files: Option<u64>,
    api_max_connections: Option<usize>,
) -> Vec<String> {
    let Some(limit) = open_files else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    if limit < LOW_OPEN_FILES {
        warnings.push(format!(
            "the open-file limit is {limit}: deliveries to many receivers may run out of \
             descriptors; raise it (LimitNOFILE=65536 in the systemd unit, ulimit -n in a shell)"
        ));
    }
    if let Some(max) = api_max_connections.filter(|&m| m as u64 > limit / 2) {
        warnings.push(format!(
            "DECNET_API_MAX_CONNECTIONS={max} is more than half the open-file limit \
             ({limit}): API clients may take the descriptors deliveries need"
        ));
    }
    warnings
}

/// actix-web bounds connections per worker thread: `(workers, bound per worker)` that
/// together never exceed `total`.
pub fn split(total: usize, workers: usize) -> (usize, usize) {
    let total = total.max(1);
    let workers = workers.clamp(1, total);
    (workers, total / workers)
}

/// The worker threads actix-web starts by default: one per core, at most the 512 it
/// accepts.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(512)
}

/// Whether a body read failed because its deadline passed ([`BodyDeadline`]).
pub fn body_timed_out(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

/// Middleware: a request's body must arrive whole within this long of its head.
/// Past it, reading the body fails (see [`body_timed_out`]). A body left unread is
/// kept until the response is written, so actix-web closes the connection rather than
/// draining a chunked body that may never end.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub Duration);

impl<S, B> Transform<S, ServiceRequest> for BodyDeadline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<KeepUnread>;
    type Error = Error;
    type Transform = BodyDeadlineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyDeadlineService {
            service,
            timeout: self.0,
        }))
    }
}

pub struct BodyDeadlineService<S> {
    service: S,
    timeout: Duration,
}

impl<S, B> Service<ServiceRequest> for BodyDeadlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<KeepUnread>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let body = Rc::new(RefCell::new(Body {
            payload: req.take_payload(),
            finished: false,
        }));
        let timed = TimedBody {
            body: body.clone(),
            deadline: Box::pin(tokio::time::sleep(self.timeout)),
            timeout: self.timeout,
            expired: false,
        };
        let timed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(timed);
        req.set_payload(Payload::from(timed));
        let response = self.service.call(req);
        Box::pin(async move {
            let response = response.await?;
            let finished = body.borrow().finished;
            let unread = (!finished).then_some(body);
            Ok(response
                .map_into_boxed_body()
                .map_body(|_, body| KeepUnread {
                    body,
                    _unread: unread,
                }))
        })
    }
}

/// The request's own body and whether it was read to its end.
struct Body {
    payload: Payload,
    finished: bool,
}

/// The body as handlers see it: the request's, until the deadline.
struct TimedBody {
    body: Rc<RefCell<Body>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: bool,
}

impl Stream for TimedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        let mut body = this.body.borrow_mut();
        match Pin::new(&mut body.payload).poll_next(cx) {
            Poll::Ready(None) => {
                body.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.expired = true;
                    Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("not received within {}", seconds(this.timeout)),
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// A response body that keeps the request's unread body alive until it is written.
pub struct KeepUnread {
    body: BoxBody,
    _unread: Option<Rc<RefCell<Body>>>,
}

impl MessageBody for KeepUnread {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// `5 s`, `2.5 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bound_leaves_half_the_descriptors() {
        assert_eq!(default_max_connections(Some(1024)), 512);
        assert_eq!(default_max_connections(Some(65_536)), 4096);
        assert_eq!(default_max_connections(Some(1)), 1);
        assert_eq!(default_max_connections(None), 4096);
    }

    #[test]
    fn a_low_limit_or_a_bound_past_half_of_it_is_warned_about() {
        assert!(open_files_warnings(None, Some(1_000_000)).is_empty());
        assert!(open_files_warnings(Some(65_536), None).is_empty());
        assert!(open_files_warnings(Some(65_536), Some(32_768)).is_empty());
        let low = open_files_warnings(Some(1024), None);
        assert_eq!(low.len(), 1);
        assert!(
            low[0].contains("1024") && low[0].contains("LimitNOFILE"),
            "{low:?}"
        );
        let past = open_files_warnings(Some(65_536), Some(40_000));
        assert_eq!(past.len(), 1);
        assert!(
            past[0].starts_with("DECNET_API_MAX_CONNECTIONS=40000"),
            "{past:?}"
        );
    }

    #[test]
    fn the_bound_splits_over_workers_without_exceeding_it() {
        assert_eq!(split(512, 2), (2, 256));
        assert_eq!(split(513, 2), (2, 256));
        assert_eq!(split(1, 4), (1, 1));
        assert_eq!(split(3, 4), (3, 1));
        assert_eq!(split(0, 0), (1, 1));
    }

    #[test]
    fn seconds_read_well() {
        assert_eq!(seconds(Duration::from_secs(5)), "5 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }
}
