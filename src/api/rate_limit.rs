//! A sliding-window limit on how often one key (a user) may do something.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

pub struct RateLimiter {
    /// Events allowed per window; 0 = no limit.
    limit: usize,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit as usize,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// Count one event for `key` unless its window is already full; true when allowed.
    pub fn try_acquire(&self, key: &str) -> bool {
        self.try_acquire_at(key, Instant::now())
    }

    fn try_acquire_at(&self, key: &str, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        // The map holds plain timestamps, so a panic elsewhere cannot leave it inconsistent.
        let mut hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget expired events of every key, so idle keys do not accumulate.
        hits.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = hits.entry(key.to_owned()).or_default();
        if times.len() >= self.limit {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_limit_per_window_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(limiter.try_acquire_at("a", t0));
        assert!(limiter.try_acquire_at("a", t0 + Duration::from_secs(1)));
        assert!(!limiter.try_acquire_at("a", t0 + Duration::from_secs(2)));
        assert!(limiter.try_acquire_at("b", t0 + Duration::from_secs(2)));
        // The first event leaves the window, making room for exactly one more.
        assert!(limiter.try_acquire_at("a", t0 + Duration::from_secs(60)));
        assert!(!limiter.try_acquire_at("a", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::per_minute(0);
        assert!((0..1000).all(|_| limiter.try_acquire("a")));
    }
}
