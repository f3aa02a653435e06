//! When a subscription's queued events go out: a queue bounded by memory (its own
//! budget and the process-wide one) and by count, batches that wait for more events up
//! to a linger, and a token bucket for the rate limit. Plain data on an explicit clock,
//! so the rules are tested on simulated time.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{pattern::Incoming, rate::TokenBucket, spec::DeliveryOptions};
use crate::domain::Event;

/// What a queued event costs in memory beyond its body: its queue slot, the shared
/// event (allocation, id, topic, time, type) and its decoded payload. An estimate of
/// what the allocator hands out, counted in full by every subscription that queues
/// the event (an event several subscriptions share is counted by each).
pub fn queued_overhead(event: &Event) -> usize {
    const ARC_HEADER: usize = 2 * std::mem::size_of::<usize>();
    // `Bytes` made from a `Vec` allocates its shared header when first cloned.
    const BYTES_SHARED: usize = 32;
    std::mem::size_of::<(Incoming, Instant, u32)>()
        + ARC_HEADER
        + std::mem::size_of::<Event>()
        + BYTES_SHARED
        + event.id.capacity()
        + event.topic.capacity()
        + event.ts.capacity()
        + event.kind.capacity()
        + json_heap(&event.payload)
}

/// What a queued event weighs against the budgets: its body and its overhead.
pub fn queued_cost(event: &Event) -> usize {
    event.body.len() + queued_overhead(event)
}

/// Heap held by a decoded JSON value (its nesting is bounded by the decoder).
fn json_heap(value: &Value) -> usize {
    // A B-tree node holds up to 11 entries (key `String`, value `Value`) plus links;
    // assume nodes half full beyond the first.
    const NODE: usize = 11 * (24 + 32) + 48;
    match value {
        Value::String(s) => s.capacity(),
        Value::Array(items) => {
            items.capacity() * std::mem::size_of::<Value>()
                + items.iter().map(json_heap).sum::<usize>()
        }
        Value::Object(map) if map.is_empty() => 0,
        Value::Object(map) => {
            map.len().div_ceil(6).max(1) * NODE
                + map
                    .iter()
                    .map(|(k, v)| k.capacity() + json_heap(v))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

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

/// Why the queue refused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The subscription's count cap.
    Count,
    /// The subscription's byte budget.
    Bytes,
    /// The budget of all subscriptions' queues together.
    Total,
}

impl Full {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Bytes => "bytes_per_subscription",
            Self::Total => "bytes_total",
        }
    }
}

/// Queued bytes above which a drained burst's memory is worth handing back.
const TRIM_AFTER: usize = 8 << 20;
/// At most one hand-back per this (it walks the allocator's free lists).
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The memory budget all subscriptions' queues share. When the queues drain after a
/// burst (what they hold falls below an eighth of a peak of `TRIM_AFTER` or more), the
/// freed heap is handed back to the system, at most once per `TRIM_EVERY`.
#[derive(Debug)]
pub struct QueueMemory {
    used: AtomicUsize,
    limit: usize,
    /// The most the queues held since the last hand-back.
    peak: AtomicUsize,
    last_trim: std::sync::Mutex<Option<Instant>>,
}

impl QueueMemory {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
            peak: AtomicUsize::new(0),
            last_trim: std::sync::Mutex::new(None),
        })
    }

    /// Whether the queues, now holding `used`, drained from a burst whose memory
    /// should be handed back at `now` (and if so, start counting a new peak).
    fn drained(&self, used: usize, now: Instant) -> bool {
        let peak = self.peak.load(Relaxed);
        if peak < TRIM_AFTER || used > peak / 8 {
            return false;
        }
        let Ok(mut last) = self.last_trim.lock() else {
            return false;
        };
        if last.is_some_and(|t| now.duration_since(t) < TRIM_EVERY) {
            return false;
        }
        *last = Some(now);
        self.peak.store(used, Relaxed);
        true
    }

    /// Bytes the queues hold now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    fn try_take(&self, bytes: usize) -> bool {
        match self.used.fetch_update(Relaxed, Relaxed, |used| {
            used.checked_add(bytes).filter(|&after| after <= self.limit)
        }) {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    fn give_back(&self, bytes: usize) {
        let used = self.used.fetch_sub(bytes, Relaxed) - bytes;
        if bytes > 0 && self.drained(used, Instant::now()) {
            tracing::debug!(
                peak_bytes = self.peak.load(Relaxed),
                "queues drained after a burst; handing freed memory back"
            );
            crate::memory::release_free_heap();
            // What the rest of the path held for the burst (delivery-log rows being
            // written, buffers, idle connections, closed after 4 s) is freed a little
            // later: hand that back too, 1, 5 and 7 s after.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async {
                    let drained = tokio::time::Instant::now();
                    for after in [1, 5, 7] {
                        tokio::time::sleep_until(drained + Duration::from_secs(after)).await;
                        crate::memory::release_free_heap();
                    }
                });
            }
        }
    }
}

/// How much a subscription's queue may hold.
#[derive(Clone, Debug)]
pub struct QueueLimits {
    pub count: usize,
    pub bytes: usize,
    pub total: Arc<QueueMemory>,
}

impl QueueLimits {
    /// Limits that only `count` binds (tests).
    pub fn count(count: usize) -> Self {
        Self {
            count,
            bytes: usize::MAX,
            total: QueueMemory::new(usize::MAX),
        }
    }
}

#[derive(Debug)]
pub struct Schedule<T> {
    /// Each event with when it arrived and what it weighs.
    queue: VecDeque<(T, Instant, u32)>,
    limits: QueueLimits,
    /// What the queued events weigh together (also taken from `limits.total`).
    bytes: usize,
    batch_max: usize,
    linger: Duration,
    rate: Option<f64>,
    bucket: Option<TokenBucket>,
}

impl<T> Schedule<T> {
    pub fn new(options: &DeliveryOptions, limits: QueueLimits, now: Instant) -> Self {
        Self {
            queue: VecDeque::new(),
            limits,
            bytes: 0,
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

    /// Queue an event that arrived at `now` and weighs `bytes`; a full queue hands it
    /// back with the limit it hit.
    pub fn push(&mut self, item: T, bytes: usize, now: Instant) -> Result<(), (T, Full)> {
        if self.queue.len() >= self.limits.count {
            return Err((item, Full::Count));
        }
        let bytes = bytes.min(u32::MAX as usize);
        if self.bytes.saturating_add(bytes) > self.limits.bytes {
            return Err((item, Full::Bytes));
        }
        if !self.limits.total.try_take(bytes) {
            return Err((item, Full::Total));
        }
        self.bytes += bytes;
        self.queue.push_back((item, now, bytes as u32));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// What the queued events weigh.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Give the weight of events that left the queue back to both budgets.
    fn release(&mut self, bytes: usize) {
        self.bytes -= bytes;
        self.limits.total.give_back(bytes);
    }

    /// Take the oldest `n` events out of the queue.
    fn take(&mut self, n: usize) -> Vec<T> {
        /// Slots an empty queue keeps; a burst's larger buffer is let go.
        const KEEP_SLOTS: usize = 1024;
        let mut bytes = 0;
        let items = self
            .queue
            .drain(..n)
            .map(|(item, _, weight)| {
                bytes += weight as usize;
                item
            })
            .collect();
        if self.queue.is_empty() && self.queue.capacity() > KEEP_SLOTS {
            self.queue = VecDeque::new();
        }
        self.release(bytes);
        items
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Everything queued, oldest first, leaving the queue empty.
    pub fn take_all(&mut self) -> Vec<T> {
        self.take(self.queue.len())
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
                let due = self
                    .queue
                    .front()
                    .map_or(now, |(_, at, _)| *at + self.linger);
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
        Next::Send(self.take(n))
    }
}

impl<T> Drop for Schedule<T> {
    /// Whatever is still queued stops counting against the shared budget.
    fn drop(&mut self) {
        self.limits.total.give_back(self.bytes);
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
        let mut s = Schedule::new(&options(1, 0, None), QueueLimits::count(10), t0);
        for i in 0..3 {
            s.push(i, 1, t0).unwrap();
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
        let mut s = Schedule::new(&options(1, 0, None), QueueLimits::count(2), t0);
        assert_eq!(s.push('a', 1, t0), Ok(()));
        assert_eq!(s.push('b', 1, t0), Ok(()));
        assert_eq!(s.push('c', 1, t0), Err(('c', Full::Count)));
        assert_eq!(s.take_all(), vec!['a', 'b']);
        assert!(s.is_empty());
    }

    #[test]
    fn memory_is_handed_back_once_a_burst_drains_and_not_too_often() {
        let t0 = Instant::now();
        let memory = QueueMemory::new(usize::MAX);
        // Small queues never ask for it.
        assert!(memory.try_take(TRIM_AFTER - 1));
        assert!(!memory.drained(0, t0));
        // After a large peak: not while more than an eighth is still queued.
        assert!(memory.try_take(1));
        assert!(!memory.drained(TRIM_AFTER / 8 + 1, t0));
        assert!(memory.drained(TRIM_AFTER / 8, t0));
        // A new peak soon after waits for the interval.
        assert!(memory.try_take(TRIM_AFTER));
        assert!(!memory.drained(0, t0 + Duration::from_secs(1)));
        assert!(memory.drained(0, t0 + TRIM_EVERY));
        assert!(!memory.drained(0, t0 + TRIM_EVERY * 3), "no new peak since");
    }

    #[test]
    fn a_waiting_event_costs_little_beyond_its_body() {
        let slim = Event::outgoing(
            uuid::Uuid::now_v7().to_string(),
            "attacker.observed".into(),
            bytes::Bytes::from_static(br#"{"id":"x","payload":{}}"#),
        );
        let overhead = queued_overhead(&slim);
        assert!(overhead < 512, "{overhead} bytes beyond the body");
        assert_eq!(queued_cost(&slim), overhead + slim.body.len());
        // The decoded payload of a full event counts: a one-key object is a whole
        // B-tree node.
        let full = Event::new(
            "x".into(),
            "attacker.observed".into(),
            "2026-01-01T00:00:00Z".into(),
            String::new(),
            serde_json::json!({"n": 1}),
        );
        assert!(queued_overhead(&full) > queued_overhead(&slim) + 11 * 56);
    }

    #[test]
    fn the_queue_is_bounded_by_its_bytes_and_by_the_shared_budget() {
        let t0 = Instant::now();
        let total = QueueMemory::new(250);
        let limits = |bytes| QueueLimits {
            count: 100,
            bytes,
            total: total.clone(),
        };
        let mut a = Schedule::new(&options(1, 0, None), limits(150), t0);
        let mut b = Schedule::new(&options(1, 0, None), limits(1000), t0);
        assert_eq!(a.push('a', 100, t0), Ok(()));
        assert_eq!(a.push('b', 60, t0), Err(('b', Full::Bytes)));
        assert_eq!(a.push('c', 50, t0), Ok(()));
        assert_eq!((a.bytes(), total.used()), (150, 150));
        // `b` has room of its own but the shared budget has 100 left.
        assert_eq!(b.push('d', 100, t0), Ok(()));
        assert_eq!(b.push('e', 1, t0), Err(('e', Full::Total)));
        // What leaves the queue frees both budgets.
        assert_eq!(a.next(Instant::now, false), Next::Send(vec!['a']));
        assert_eq!((a.bytes(), total.used()), (50, 150));
        assert_eq!(b.push('e', 100, t0), Ok(()));
        assert_eq!(b.take_all(), vec!['d', 'e']);
        assert_eq!(total.used(), 50);
        // A queue dropped with events in it gives their weight back too.
        drop(a);
        assert_eq!(total.used(), 0);
    }

    #[test]
    fn a_partial_batch_waits_for_the_linger_of_its_oldest_event() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(&options(3, 100, None), QueueLimits::count(10), t0);
        s.push(1, 1, t0).unwrap();
        s.push(2, 1, t0 + ms(40)).unwrap();
        assert_eq!(s.next(|| t0 + ms(40), false), Next::Wait(ms(60)));
        assert_eq!(s.next(|| t0 + ms(100), false), Next::Send(vec![1, 2]));
        // A full batch goes at once, the rest waits its own linger.
        for i in 3..=6 {
            s.push(i, 1, t0 + ms(200)).unwrap();
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
        let mut s = Schedule::new(&options(1, 0, Some(10.0)), QueueLimits::count(10), t0);
        for i in 0..3 {
            s.push(i, 1, t0).unwrap();
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
