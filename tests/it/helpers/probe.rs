//! Reads what the supervisor says it did on a reload (started / stopped / updated),
//! so the bench's `scale` can show a one-row reload touched one subscription and no
//! other, and a test can see what a reload did. Also built into `decnet-bench`.

use std::sync::{Arc, Mutex};

use tracing::{
    field::{Field, Visit},
    subscriber::DefaultGuard,
    Event, Subscriber,
};
use tracing_subscriber::{
    filter::{filter_fn, LevelFilter},
    layer::{Context, SubscriberExt},
    Layer,
};

const SUPERVISOR: &str = "decnet_webhook::actors::supervisor";
/// The supervisor's line for a reload that found nothing to do.
const NOTHING_CHANGED: &str = "reload: nothing changed";

/// What one reload did, as the supervisor logged it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub started: u64,
    pub stopped: u64,
    pub updated: u64,
    /// Whether a reload line was seen at all.
    pub seen: bool,
}

/// Installed as this thread's subscriber (where the actors run) until dropped;
/// warnings still go to stderr.
pub struct ReloadProbe {
    last: Arc<Mutex<Touched>>,
    _guard: DefaultGuard,
}

impl ReloadProbe {
    pub fn install() -> Self {
        let last = Arc::new(Mutex::new(Touched::default()));
        let layer = Recorder { last: last.clone() }
            .with_filter(filter_fn(|meta| meta.target() == SUPERVISOR));
        let warnings = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(LevelFilter::WARN);
        let subscriber = tracing_subscriber::registry().with(layer).with(warnings);
        Self {
            last,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The most recent reload's counts, and forget them.
    pub fn last(&self) -> Touched {
        self.last
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }
}

struct Recorder {
    last: Arc<Mutex<Touched>>,
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut seen = Fields::default();
        event.record(&mut seen);
        let touched = if seen.message.as_deref() == Some(NOTHING_CHANGED) {
            Touched {
                seen: true,
                ..Touched::default()
            }
        } else if let Some(started) = seen.started {
            Touched {
                started,
                stopped: seen.stopped.unwrap_or(0),
                updated: seen.updated.unwrap_or(0),
                seen: true,
            }
        } else {
            return;
        };
        if let Ok(mut last) = self.last.lock() {
            *last = touched;
        }
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    started: Option<u64>,
    stopped: Option<u64>,
    updated: Option<u64>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "started" => self.started = Some(value),
            "stopped" => self.stopped = Some(value),
            "updated" => self.updated = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        }
    }
}
