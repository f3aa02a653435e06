//! The tracing subscriber: plain or JSON lines on stderr, filtered by `RUST_LOG`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// `one_shot`: a command that prints an answer and exits, whose output is that answer
/// alone: the migrator's progress lines are left out.
pub fn init(format: LogFormat, one_shot: bool) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if one_shot {
        if let Ok(quiet) = "sea_orm_migration=warn".parse() {
            filter = filter.add_directive(quiet);
        }
    }
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
                tracing::error!(panic = %message, %location, thread = thread.name().unwrap_or("unnamed"), "panicked");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_kept_for_whoever_cleans_up_on_its_thread() {
        install_panic_hook();
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 42));
        assert!(caught.is_err());
        let message = take_panic().expect("the panic was kept");
        assert!(
            message.starts_with("boom 42 at src/telemetry.rs:"),
            "{message}"
        );
        assert_eq!(take_panic(), None, "taken once");
        // Another thread's panic is its own.
        let other = std::thread::spawn(|| {
            let _ = std::panic::catch_unwind(|| panic!("elsewhere"));
        });
        other.join().unwrap();
        assert_eq!(take_panic(), None);
    }
}
