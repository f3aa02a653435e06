//! Test harness: real NATS, real receivers, real databases.

#![allow(dead_code, unused_imports)]

pub mod app;
pub mod db;
pub mod nats;
pub mod probe;
pub mod process;
pub mod receiver;
pub mod worker;

pub use app::{AppOptions, TestApp};
pub use db::TestDb;
pub use nats::NatsServer;
pub use receiver::{Recorded, Reply, TestReceiver};

use std::time::{Duration, Instant};

/// Poll `check` until it returns `Some`, or panic with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
