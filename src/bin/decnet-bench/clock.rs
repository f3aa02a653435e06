//! One monotonic clock for the publisher and the receivers: both run in this process,
//! so a send time in the payload and an arrival time compare directly.

use std::{sync::OnceLock, time::Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since the first call in this process.
pub fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Start the clock (so the first reading is not an outlier).
pub fn init() {
    let _ = epoch();
}
