//! The template sandbox: templates compile and render in child processes, never in
//! the service.
//!
//! minijinja bounds the steps of a render (fuel) but neither its memory nor its time.
//! Its code generator folds constant expressions while it compiles (`Expr::as_const`
//! evaluates binary operators through `value::ops`), so `"x" * 100000000` is a
//! 100 MB string before any render and a few of them abort the whole process; the
//! only cap in `ops` is 100,000,000 bytes per string repetition, `~` is a plain
//! `format!`, `+` and `*` on lists build lazily and materialise when iterated,
//! captured blocks and macro output grow unchecked, and one step can copy megabytes.
//! Nothing in its public interface hooks those operators or the capture buffers, so
//! a limit inside the service process would be a partial list of guesses; an
//! address-space limit on a separate process covers them all, and a process can be
//! killed where a thread cannot.
//!
//! So each render request goes to one of [`PROCESSES`] long-lived child processes
//! (the same binary, see `child`), each capped at its start size plus
//! `DECNET_WEBHOOK_TEMPLATE_MEMORY_MIB`, and killed when a request runs past
//! `DECNET_WEBHOOK_TEMPLATE_TIMEOUT_MS`. A request that hits a limit fails (the
//! events become `render_failed` dead letters) and a fresh process takes the next
//! one. Callers await the answer, so no actor thread is held. A template that cost a
//! process or its whole time budget is paused for a while (1 s, doubling up to 60 s)
//! so it cannot keep a process busy event after event.

mod child;
mod process;
mod wire;

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    path::PathBuf,
    sync::{mpsc, Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{error::ShapeError, limits::MAX_TEMPLATE_BYTES};
use process::{Failure, Process};

pub use child::entry as child_entry;

/// Sandbox processes rendering at once: one template that runs to its limit holds
/// one of them, and a subscription renders one request at a time.
pub const PROCESSES: usize = 2;

/// How long a template that hit a limit is paused first, and at most.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The limits of one render request (one event, or one batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Wall-clock time a request may take in its process.
    pub timeout: Duration,
    /// Memory a sandbox process may use beyond its size at start.
    pub memory_mib: u64,
}

impl TemplateLimits {
    pub fn from_settings(webhook: &crate::config::WebhookSettings) -> Self {
        Self {
            timeout: webhook.template_timeout,
            memory_mib: webhook.template_memory_mib,
        }
    }
}

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Run `path` as the sandbox instead of this program, for the rest of the process
/// (a test binary that cannot be one points at the built `decnet`).
pub fn set_program(path: impl Into<PathBuf>) {
    let _ = PROGRAM.set(path.into());
}

/// The program run as the sandbox: this very binary, through `/proc/self/exe`, so
/// a binary replaced on disk by an upgrade still starts sandboxes of its own build.
fn program() -> PathBuf {
    if let Some(path) = PROGRAM.get() {
        return path.clone();
    }
    let own = PathBuf::from("/proc/self/exe");
    if own.exists() {
        return own;
    }
    std::env::current_exe().unwrap_or(own)
}

/// Renders templates in the sandbox processes; cheap to clone, shared by the API
/// and the worker of one process.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    limits: TemplateLimits,
    pauses: Mutex<Pauses>,
}

struct Job {
    request: Vec<u8>,
    answer: oneshot::Sender<Result<Vec<u8>, Failure>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// One event per kind of DECNET subject, for the trial render on save.
const SAMPLES: [&str; 3] = [
    r#"{"id":"6f1c2a3b4d5e4f60a1b2c3d4e5f60718","payload":{"attacker_ip":"203.0.113.7","decky":"decky-01","event_type":"login_attempt","first_seen":"2026-04-24T09:59:58+00:00","service":"ssh"},"topic":"attacker.observed","ts":"2026-04-24T10:00:00+00:00","type":"first_sighting","v":1}"#,
    r#"{"id":"0a0b0c0d-0e0f-4011-8213-141516171819","payload":{"attacker_ip":"198.51.100.23","credential_count":7,"event_count":42,"is_traversal":true,"score":87},"topic":"attacker.scored","ts":"2026-04-24T10:00:01.250000+00:00","type":"score","v":1}"#,
    r#"{"id":"e3","payload":{"decky":"web-07","state":"running"},"topic":"decky.web-07.state","ts":"2026-04-24T10:00:02+00:00","type":"state","v":1}"#,
];

impl Sandbox {
    /// Start the sandbox's threads; its processes start with the first request.
    pub fn new(limits: TemplateLimits) -> Self {
        Self::with_program(program(), limits)
    }

    fn with_program(program: PathBuf, limits: TemplateLimits) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..PROCESSES {
            let queue = queue.clone();
            let program = program.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("template-sandbox-{n}"))
                .spawn(move || serve(&queue, &program, limits));
            if let Err(e) = spawned {
                // With no thread the queue's receiver is dropped and requests fail
                // as unavailable rather than wait.
                tracing::error!(error = %e, "cannot start a template sandbox thread");
            }
        }
        Self {
            inner: Arc::new(Inner {
                jobs,
                limits,
                pauses: Mutex::default(),
            }),
        }
    }

    pub fn limits(&self) -> TemplateLimits {
        self.inner.limits
    }

    /// Render each envelope with `source`: one result per envelope, or one error for
    /// them all when the template could not run (a limit, a pause, no sandbox).
    pub async fn render(
        &self,
        source: &str,
        envelopes: &[Bytes],
    ) -> Result<Vec<Result<Bytes, ShapeError>>, ShapeError> {
        let key = key_of(source);
        if let Some(paused) = self.pauses().check(key, Instant::now()) {
            return Err(paused);
        }
        let result = self.run(source, envelopes).await;
        self.pauses()
            .record(key, result.as_ref().err(), Instant::now());
        result
    }

    /// What the API runs before it stores a template: it must compile, and render
    /// each sample event within every limit. Other render errors (a field the
    /// samples lack, output that is not JSON for them) depend on the event and are
    /// let through, as they were.
    pub async fn check(&self, source: &str) -> Result<(), ShapeError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(ShapeError::TemplateTooLarge { size: source.len() });
        }
        // One request per sample: the time limit is per render.
        for sample in SAMPLES {
            let results = self
                .run(source, &[Bytes::from_static(sample.as_bytes())])
                .await?;
            for result in results {
                match result {
                    Err(e @ ShapeError::Syntax { .. }) => return Err(e),
                    Err(e) if e.is_limit() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        source: &str,
        envelopes: &[Bytes],
    ) -> Result<Vec<Result<Bytes, ShapeError>>, ShapeError> {
        let gone = || ShapeError::Unavailable("the sandbox threads stopped".into());
        let request = wire::encode_request(source, envelopes)
            .map_err(|e| ShapeError::Unavailable(e.to_string()))?;
        let (answer, answered) = oneshot::channel();
        self.inner
            .jobs
            .send(Job { request, answer })
            .map_err(|_| gone())?;
        let body = answered
            .await
            .map_err(|_| gone())?
            .map_err(|f| self.failure(f))?;
        wire::decode_response(&body)
            .filter(|results| results.len() == envelopes.len())
            .ok_or_else(|| ShapeError::Crashed("it answered something unreadable".into()))
    }

    fn failure(&self, failure: Failure) -> ShapeError {
        let limits = self.inner.limits;
        match failure {
            Failure::TimedOut => ShapeError::TimedOut {
                ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            },
            Failure::OutOfMemory => ShapeError::OutOfMemory {
                mib: limits.memory_mib,
            },
            Failure::Crashed(why) => ShapeError::Crashed(why),
            Failure::Unavailable(why) => ShapeError::Unavailable(why),
        }
    }

    fn pauses(&self) -> std::sync::MutexGuard<'_, Pauses> {
        // Plain data: whatever panicked while holding it left it usable.
        self.inner
            .pauses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One sandbox thread: takes requests off the shared queue, one at a time, each
/// to its process (started when needed, replaced after a failure).
fn serve(queue: &Mutex<mpsc::Receiver<Job>>, program: &std::path::Path, limits: TemplateLimits) {
    let mut process: Option<Process> = None;
    let mut last_warning: Option<Instant> = None;
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        if job.answer.is_closed() {
            continue;
        }
        let result = exchange(&mut process, program, limits, &job.request);
        if let Err(Failure::Unavailable(e)) = &result {
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_warning = Some(Instant::now());
                tracing::error!(error = %e, "template sandbox unavailable; template renders fail");
            }
        }
        let _ = job.answer.send(result);
    }
}

/// One request, on the thread's process (started if there is none).
fn exchange(
    process: &mut Option<Process>,
    program: &std::path::Path,
    limits: TemplateLimits,
    request: &[u8],
) -> Result<Vec<u8>, Failure> {
    let mut fresh = process.is_none();
    loop {
        let p = match process {
            Some(p) => p,
            None => process.insert(Process::start(program, limits.memory_mib)?),
        };
        let deadline = Instant::now() + limits.timeout;
        match p.send(request) {
            Ok(()) => return p.answer(deadline).inspect_err(|_| *process = None),
            Err(failure) => {
                *process = None;
                // One that had died while idle (killed from outside, say) gets a
                // fresh successor; one that died taking this request does not.
                if fresh || failure == Failure::OutOfMemory {
                    return Err(failure);
                }
                fresh = true;
            }
        }
    }
}

fn key_of(source: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    hasher.finish()
}

/// Templates paused after a costly failure, by source hash.
#[derive(Default)]
struct Pauses(HashMap<u64, Pause>);

struct Pause {
    strikes: u32,
    until: Instant,
    error: String,
}

impl Pauses {
    /// The error a paused template's request fails with now, if it is paused.
    fn check(&self, key: u64, now: Instant) -> Option<ShapeError> {
        let pause = self.0.get(&key)?;
        let left = pause
            .until
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())?;
        let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        Some(ShapeError::Paused {
            secs: ms.div_ceil(1000).max(1),
            error: pause.error.clone(),
        })
    }

    /// A request of `key` ended with `error` (`None`: it ran).
    fn record(&mut self, key: u64, error: Option<&ShapeError>, now: Instant) {
        match error {
            None => {
                if !self.0.is_empty() {
                    self.0.remove(&key);
                }
            }
            Some(e) if e.is_costly() => {
                if self.0.len() >= 1024 {
                    self.0.retain(|_, p| p.until + MAX_PAUSE > now);
                }
                let pause = self.0.entry(key).or_insert(Pause {
                    strikes: 0,
                    until: now,
                    error: String::new(),
                });
                pause.strikes = pause.strikes.saturating_add(1);
                let doubling = 1u32.checked_shl(pause.strikes - 1).unwrap_or(u32::MAX);
                pause.until = now + FIRST_PAUSE.saturating_mul(doubling).min(MAX_PAUSE);
                pause.error = e.to_string();
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costly_failures_pause_a_template_doubling_and_a_success_clears_it() {
        let mut pauses = Pauses::default();
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let timed_out = ShapeError::TimedOut { ms: 1000 };
        assert!(pauses.check(1, t0).is_none());
        pauses.record(1, Some(&timed_out), t0);
        let paused = pauses.check(1, t0).expect("paused");
        assert_eq!(
            paused.to_string(),
            "template renders are paused for 1 s after: \
             template took longer than 1000 ms to render and was stopped"
        );
        assert!(pauses.check(2, t0).is_none(), "other templates run");
        assert!(pauses.check(1, t0 + secs(1)).is_none(), "over after 1 s");
        pauses.record(1, Some(&ShapeError::OutOfMemory { mib: 64 }), t0 + secs(1));
        assert!(pauses.check(1, t0 + secs(2)).is_some(), "then 2 s");
        assert!(pauses.check(1, t0 + secs(3)).is_none());
        for _ in 0..20 {
            pauses.record(1, Some(&timed_out), t0);
        }
        assert!(pauses.check(1, t0 + secs(59)).is_some(), "at most a minute");
        assert!(pauses.check(1, t0 + secs(60)).is_none());
        // Errors of the template's own logic do not pause it; a request that ran
        // clears the strikes.
        pauses.record(1, Some(&ShapeError::OutOfFuel), t0 + secs(60));
        assert!(pauses.check(1, t0 + secs(60)).is_none());
        pauses.record(1, None, t0 + secs(60));
        pauses.record(1, Some(&timed_out), t0 + secs(60));
        assert!(pauses.check(1, t0 + secs(61)).is_none(), "back to 1 s");
    }

    #[actix_rt::test]
    async fn without_a_sandbox_program_renders_are_unavailable() {
        let sandbox = Sandbox::with_program(
            "/nonexistent/decnet".into(),
            TemplateLimits {
                timeout: Duration::from_secs(1),
                memory_mib: 64,
            },
        );
        let err = sandbox
            .render("{{ id }}", &[Bytes::from_static(b"{}")])
            .await
            .unwrap_err();
        assert!(matches!(err, ShapeError::Unavailable(_)), "{err:?}");
        let err = sandbox.check("{{ id }}").await.unwrap_err();
        assert!(matches!(err, ShapeError::Unavailable(_)), "{err:?}");
    }
}
