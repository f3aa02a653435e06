//! The tracing subscriber: plain or JSON lines on stderr, filtered by `RUST_LOG`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
    install_panic_hook();
}

thread_local! {
    /// The last panic on this thread, for whoever cleans up after it.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Log every panic as an error event (once a subscriber is set; the default hook's
/// text otherwise) and keep its message for [`take_panic`]: a panicking actor is
/// dropped by the runtime, which says nothing of it. Installed once per process.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let described = if location.is_empty() {
                message.clone()
            } else {
                format!("{message} at {location}")
            };
            let _ = LAST_PANIC.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some(described);
                }
            });
            if tracing::dispatcher::has_been_set() {
                let thread = std::thread::current();
                tracing::error!(panic = %message, %location, thread = thread.name().unwrap_or("unnamed"), "panic");
            } else {
                previous(info);
            }
        }));
    });
}

/// The message of the last panic on this thread, if any, clearing it.
pub fn take_panic() -> Option<String> {
    LAST_PANIC
        .try_with(|last| last.try_borrow_mut().ok().and_then(|mut l| l.take()))
        .ok()
        .flatten()
}
