//! The HTTP delivery client, shared by the worker and the API's test ping and replay,
//! and how it reaches a receiver: static headers, authorization (`auth.rs`, with the
//! OAuth2 token cache), per-receiver TLS (`tls.rs`), and the pauses receivers ask for
//! between requests (`pacing.rs`).
//!
//! A delivery returns a [`DeliveryOutcome`], never an error: the caller decides what a
//! failure means (circuit breaker, dead letter, test-ping answer).

pub mod access;
pub mod answer;
pub mod auth;
mod client;
mod failure;
mod indexing;
mod items;
pub mod outcome;
mod pacing;
mod pinned;
mod request;
pub mod retry;
pub mod settings;
pub mod signing;
pub mod target;
pub mod tls;
mod wait;

pub use access::ReceiverAccess;
pub use answer::{Protocol, Verdict};
pub use client::DeliveryClient;
pub use outcome::{log_rows, Attempt, DeliveryOutcome, FailureKind, ItemFailure};
pub use settings::DeliverySettings;
pub use target::Target;
