//! When a subscription's queued events go out: a bounded queue, batches that wait for
//! more events up to a linger, and a token bucket for the rate limit. Plain data on an
//! explicit clock, so the rules are tested on simulated time.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::{rate::TokenBucket, spec::DeliveryOptions};

/// What the subscription should do next.
#[derive(Debug, PartialEq)]
pub enum Next<T> {
    /// Deliver these (one event, or a batch) now.
    Send(Vec<T>),
    /// Nothing may go before this much time has passed.
    Wait(Duration),
    /// The queue is empty.
    Idle,
}

#[derive(Debug)]
pub struct Schedule<T> {
    queue: VecDeque<(T, Instant)>,
    capacity: usize,
    batch_max: usize,
    linger: Duration,
    rate: Option<f64>,
    bucket: Option<TokenBucket>,
}

impl<T> Schedule<T> {
    pub fn new(options: &DeliveryOptions, capacity: usize, now: Instant) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity,
            batch_max: options.batch_max.max(1),
            linger: options.batch_linger,
            rate: options.rate_limit_per_sec,
            bucket: options
                .rate_limit_per_sec
                .map(|rate| TokenBucket::new(rate, now)),
        }
    }

    /// Take new options; the bucket starts afresh only when the rate changed.
    pub fn update(&mut self, options: &DeliveryOptions, now: Instant) {
        self.batch_max = options.batch_max.max(1);
        self.linger = options.batch_linger;
        if options.rate_limit_per_sec != self.rate {
            self.rate = options.rate_limit_per_sec;
            self.bucket = self.rate.map(|rate| TokenBucket::new(rate, now));
        }
    }

    /// Queue an event that arrived at `now`; a full queue hands it back.
    pub fn push(&mut self, item: T, now: Instant) -> Result<(), T> {
        if self.queue.len() >= self.capacity {
            return Err(item);
        }
        self.queue.push_back((item, now));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Everything queued, oldest first, leaving the queue empty.
    pub fn take_all(&mut self) -> Vec<T> {
        self.queue.drain(..).map(|(item, _)| item).collect()
    }

    /// The next delivery: a full batch, or a partial one whose oldest event waited the
    /// linger (at once when `flush`, as when draining), then a rate-limit token, which
    /// it takes. `clock` is read only when batching or a rate limit needs it.
    pub fn next(&mut self, clock: impl FnOnce() -> Instant, flush: bool) -> Next<T> {
        if self.queue.is_empty() {
            return Next::Idle;
        }
        if self.batch_max > 1 || self.bucket.is_some() {
            let now = clock();
            if self.batch_max > 1 && self.queue.len() < self.batch_max && !flush {
                let due = self.queue.front().map_or(now, |(_, at)| *at + self.linger);
                if due > now {
                    return Next::Wait(due - now);
                }
            }
            if let Some(bucket) = self.bucket.as_mut() {
                if let Err(wait) = bucket.take(now) {
                    return Next::Wait(wait);
                }
            }
        }
        let n = self.batch_max.min(self.queue.len());
        Next::Send(self.queue.drain(..n).map(|(item, _)| item).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(batch_max: usize, linger_ms: u64, rate: Option<f64>) -> DeliveryOptions {
        DeliveryOptions {
            batch_max,
            batch_linger: Duration::from_millis(linger_ms),
            rate_limit_per_sec: rate,
            ..DeliveryOptions::default()
        }
    }

    #[test]
    fn unbatched_events_go_one_by_one_without_the_clock() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&options(1, 0, None), 10, t0);
        for i in 0..3 {
            s.push(i, t0).unwrap();
        }
        let no_clock = || -> Instant { panic!("the clock is not needed") };
        assert_eq!(s.next(no_clock, false), Next::Send(vec![0]));
        assert_eq!(s.next(no_clock, false), Next::Send(vec![1]));
        assert_eq!(s.next(no_clock, false), Next::Send(vec![2]));
        assert_eq!(s.next(no_clock, false), Next::Idle);
    }

    #[test]
    fn a_full_queue_hands_the_event_back() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&options(1, 0, None), 2, t0);
        assert_eq!(s.push('a', t0), Ok(()));
        assert_eq!(s.push('b', t0), Ok(()));
        assert_eq!(s.push('c', t0), Err('c'));
        assert_eq!(s.take_all(), vec!['a', 'b']);
        assert!(s.is_empty());
    }

    #[test]
    fn a_partial_batch_waits_for_the_linger_of_its_oldest_event() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(&options(3, 100, None), 10, t0);
        s.push(1, t0).unwrap();
        s.push(2, t0 + ms(40)).unwrap();
        assert_eq!(s.next(|| t0 + ms(40), false), Next::Wait(ms(60)));
        assert_eq!(s.next(|| t0 + ms(100), false), Next::Send(vec![1, 2]));
        // A full batch goes at once, the rest waits its own linger.
        for i in 3..=6 {
            s.push(i, t0 + ms(200)).unwrap();
        }
        assert_eq!(s.next(|| t0 + ms(200), false), Next::Send(vec![3, 4, 5]));
        assert_eq!(s.next(|| t0 + ms(250), false), Next::Wait(ms(50)));
        // Draining sends what is left without waiting.
        assert_eq!(s.next(|| t0 + ms(250), true), Next::Send(vec![6]));
    }

    /// The wait `next` asks for, to the microsecond (the bucket counts in floats).
    fn wait_us<T: std::fmt::Debug>(next: Next<T>) -> u128 {
        match next {
            Next::Wait(d) => (d.as_nanos() + 500) / 1000,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn the_rate_limit_spaces_deliveries() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(&options(1, 0, Some(10.0)), 10, t0);
        for i in 0..3 {
            s.push(i, t0).unwrap();
        }
        assert_eq!(s.next(|| t0, false), Next::Send(vec![0]));
        assert_eq!(wait_us(s.next(|| t0, false)), 100_000);
        assert_eq!(s.next(|| t0 + ms(100), false), Next::Send(vec![1]));
        assert_eq!(wait_us(s.next(|| t0 + ms(150), false)), 50_000);
        // A new rate starts a new bucket; the same rate keeps the old one.
        s.update(&options(1, 0, Some(10.0)), t0 + ms(150));
        assert_eq!(wait_us(s.next(|| t0 + ms(150), false)), 50_000);
        s.update(&options(1, 0, None), t0 + ms(150));
        assert_eq!(s.next(|| t0 + ms(150), false), Next::Send(vec![2]));
    }
}
