//! Test harness: real NATS, real receivers, real databases.

#![allow(dead_code, unused_imports)]

pub mod app;
pub mod cluster;
pub mod db;
pub mod fakes;
pub mod http;
pub mod nats;
pub mod oauth;
pub mod probe;
pub mod process;
pub mod receiver;
pub mod templates;
pub mod tls;
pub mod worker;

pub use app::{AppOptions, TestApp};
pub use db::TestDb;
pub use nats::NatsServer;
pub use receiver::{Recorded, Reply, TestReceiver};

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Template sandboxes run the built `decnet` (this test binary cannot be one).
pub fn use_built_sandbox() {
    decnet_webhook::shape::sandbox::set_program(env!("CARGO_BIN_EXE_decnet"));
}

/// How long a condition a test waits on may take to come true. Waits that sit out a
/// reconnect backoff or a retry schedule give a longer time of their own.
pub const WAIT: Duration = Duration::from_secs(20);

/// What a check given to [`eventually`] answers: `Some` / `Ok` with the value once the
/// condition holds; `Err` says what it saw instead, shown if the wait times out.
pub trait Outcome {
    type Value;
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Outcome for Result<T, String> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Poll `check` until it holds, or panic with `what` (and the last state the check
/// reported) after `within`.
pub async fn eventually<C, F, Fut>(within: Duration, what: &str, check: F) -> C::Value
where
    C: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    match try_eventually(within, check).await {
        Ok(v) => v,
        Err(None) => panic!("timed out after {within:?} waiting for {what}"),
        Err(Some(state)) => panic!("timed out after {within:?} waiting for {what}: {state}"),
    }
}

/// [`eventually`] that hands back the last state on timeout instead of panicking, for
/// a caller with more to gather before it fails (the browser test's screenshot).
pub async fn try_eventually<C, F, Fut>(
    within: Duration,
    mut check: F,
) -> Result<C::Value, Option<String>>
where
    C: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        let state = match check().await.ready() {
            Ok(v) => return Ok(v),
            Err(state) => state,
        };
        if Instant::now() >= deadline {
            return Err(state);
        }
        tokio::time::sleep(pause).await;
        // Quick to see what holds soon, yet light over a long wait: some checks copy
        // thousands of recorded requests.
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
