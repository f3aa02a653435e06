//! A token bucket: `rate` deliveries per second, with a burst of a tenth of a
//! second's worth (at least one), so any window of a few seconds stays within a few
//! percent of the rate.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` must be finite and positive (the API and the row reader ensure it).
    pub fn new(rate: f64, now: Instant) -> Self {
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
            // At least a millisecond: the timer's resolution.
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
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
    fn slow_rates_wait_whole_periods() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5, start);
        assert!(bucket.take(start).is_ok());
        let wait = bucket.take(start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
    }
}
