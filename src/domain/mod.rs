//! Pure types with parse-don't-validate constructors.

pub mod event;
pub mod pattern;
pub mod simple_event;
pub mod text;
pub mod trace;
pub mod webhook_url;

pub use event::Event;
pub use pattern::SubjectPattern;
pub use simple_event::SimpleEvent;
pub use trace::TraceContext;
pub use webhook_url::{UrlError, WebhookUrl};
