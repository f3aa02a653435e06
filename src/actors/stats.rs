//! Counters the whole worker keeps, shared by its actors.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters the worker keeps (read by tests, logs and metrics).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub undecodable: AtomicU64,
    pub overflow: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// What became of each subscription's events here.
    pub ledger: super::ledger::Ledger,
}

impl WorkerStats {
    pub fn record_undecodable(&self) -> u64 {
        self.undecodable.fetch_add(1, Relaxed) + 1
    }
    pub fn record_overflow(&self) -> u64 {
        self.overflow.fetch_add(1, Relaxed) + 1
    }
    pub fn record_delivery(&self, ok: bool) {
        if ok {
            self.delivered.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }
}
