//! The worker as actors: Supervisor → Subscription → Pattern, a shared Delivery pool,
//! the Circuit breaker and the Journal. `Worker::start` wires them to the bus and the
//! database.

pub mod circuit;
pub mod decoded;
pub mod delivery;
pub mod journal;
pub mod ledger;
pub mod pattern;
pub mod rate;
pub mod schedule;
pub mod spec;
pub mod stats;
pub mod subscription;
pub mod supervisor;
pub mod worker;

pub use stats::WorkerStats;
pub use worker::Worker;

#[cfg(test)]
mod tests;
