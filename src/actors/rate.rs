//! A token bucket: `rate` deliveries per second, with a burst of a tenth of a
//! second's worth (at least one), so any window of a few seconds stays within a few
//! percent of the rate.
//!
//! Any rate is taken without a panic: the API refuses rates outside
//! `MIN_RATE`–`MAX_RATE`, and a stored row outside them (or not a number) is
//! brought within them here.

use std::time::{Duration, Instant};

/// The slowest rate the bucket runs at (one delivery per 1,000 s).
pub const MIN_RATE: f64 = 0.001;
/// The fastest.
pub const MAX_RATE: f64 = 10_000.0;
/// The longest wait `take` asks for: a whole period at the slowest rate.
const MAX_WAIT: Duration = Duration::from_secs(1000);

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` deliveries per second, brought within `MIN_RATE`–`MAX_RATE` (a NaN
    /// runs at the slowest).
    pub fn new(rate: f64, now: Instant) -> Self {
        let rate = clamp_rate(rate);
        let capacity = (rate / 10.0).max(1.0);
        Self {
            rate,
            capacity,
            // Start with one token: the first delivery goes at once, no burst after idle start.
            tokens: 1.0,
            last: now,
        }
    }

    /// Take a token, or say how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            // At least a millisecond (the timer's resolution), at most a period.
            let wait = Duration::try_from_secs_f64(wait).unwrap_or(MAX_WAIT);
            Err(wait.clamp(Duration::from_millis(1), MAX_WAIT))
        }
    }
}

/// `rate` within `MIN_RATE`–`MAX_RATE`; the slowest for a NaN.
pub fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        MIN_RATE
    } else {
        rate.clamp(MIN_RATE, MAX_RATE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_the_rate_over_simulated_time() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(50.0, start);
        let mut now = start;
        let mut granted = 0;
        // Step a simulated clock through 10 s, taking whenever allowed.
        while now < start + Duration::from_secs(10) {
            match bucket.take(now) {
                Ok(()) => granted += 1,
                Err(wait) => now += wait,
            }
        }
        // 1 initial token + 50/s × 10 s, give or take one.
        assert!((500..=502).contains(&granted), "granted {granted}");
    }

    #[test]
    fn burst_after_idle_is_bounded() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, start);
        let later = start + Duration::from_secs(60);
        let burst = std::iter::from_fn(|| bucket.take(later).ok()).count();
        assert_eq!(burst, 10);
    }

    #[test]
    fn any_rate_is_taken_without_a_panic() {
        let start = Instant::now();
        for rate in [
            1e-30,
            0.0,
            -5.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1e300,
        ] {
            let mut bucket = TokenBucket::new(rate, start);
            assert!(bucket.take(start).is_ok(), "{rate}: the first token");
            let wait = bucket.take(start).unwrap_err();
            assert!(wait >= Duration::from_micros(100), "{rate}: {wait:?}");
            assert!(wait <= MAX_WAIT, "{rate}: {wait:?}");
            // A clock far in the future refills, never overflows.
            let later = start + Duration::from_secs(10 * 365 * 86_400);
            assert!(bucket.take(later).is_ok(), "{rate}");
        }
        // The slowest rate waits one whole period.
        let mut slow = TokenBucket::new(1e-30, start);
        slow.take(start).unwrap();
        assert_eq!(slow.take(start).unwrap_err(), MAX_WAIT);
    }

    #[test]
    fn slow_rates_wait_whole_periods() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5, start);
        assert!(bucket.take(start).is_ok());
        let wait = bucket.take(start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
    }
}
