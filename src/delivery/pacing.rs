//! Receivers that said how long to wait before their next request: Discord's
//! `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset-After`, and its 429s. Every
//! sender thread of the process waits for them, not only the one that read the
//! answer, and so does every subscription sending to the same URL (Discord's bucket
//! is the webhook's), so a burst is paced instead of answered with 429s. Requests to
//! one such URL also go one at a time (`turn`): each waits for the answer before it,
//! which says what the bucket has left, instead of a burst racing for its last tokens.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::wait::{pause, stopped};
use crate::domain::webhook_url::WebhookUrl;

/// Above this many URLs held, the ones whose hold has ended are swept on insert.
const SWEEP_AT: usize = 1024;

pub struct Pacing {
    /// URLs are keyed by a hash with this process's own random keys: the map never
    /// holds a URL (a Discord URL holds its token), and keys cannot be made to collide.
    hasher: RandomState,
    until: Mutex<HashMap<u64, Instant>>,
    /// One turn per URL: the request holding it is the only one in flight there.
    turns: Mutex<HashMap<u64, Arc<Semaphore>>>,
}

static PACING: LazyLock<Pacing> = LazyLock::new(Pacing::new);

impl Pacing {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            until: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// The turn of requests to `url`: acquire a permit before sending, and keep it
    /// until the answer has been read (and any hold it asked for recorded).
    pub fn turn(&self, url: &str) -> Arc<Semaphore> {
        let key = self.hasher.hash_one(url);
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        if turns.len() >= SWEEP_AT {
            // A turn nobody holds or waits for is made again when needed.
            turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        turns
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone()
    }

    /// The process's one table.
    pub fn global() -> &'static Self {
        &PACING
    }

    /// How long to wait, from `now`, before the next request to `url`; `None` when
    /// it may go at once.
    pub fn wait(&self, url: &str, now: Instant) -> Option<Duration> {
        let key = self.hasher.hash_one(url);
        let until = self.table().get(&key).copied()?;
        Some(until.saturating_duration_since(now)).filter(|w| !w.is_zero())
    }

    /// Hold requests to `url` for `wait` from `now`; a hold that ends later stands.
    pub fn hold(&self, url: &str, now: Instant, wait: Duration) {
        let key = self.hasher.hash_one(url);
        let until = now + wait;
        let mut table = self.table();
        if table.len() >= SWEEP_AT {
            table.retain(|_, held| *held > now);
        }
        let held = table.entry(key).or_insert(until);
        *held = (*held).max(until);
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        // The table holds plain instants: one a panicking holder left is still sound.
        self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Take `url`'s turn, then wait while the receiver asked for a pause before its next
/// request, for this URL or for every URL of its `scope` (see
/// `Protocol::pacing_scope`). The turn is to be kept until the answer is read. `None`
/// if `stop` turned true meanwhile.
pub(super) async fn take_turn(
    receiver: &WebhookUrl,
    scope: Option<&str>,
    stop: &watch::Receiver<bool>,
) -> Option<OwnedSemaphorePermit> {
    let (pacing, url) = (Pacing::global(), receiver.as_str());
    let turn = pacing.turn(url);
    let mut stopping = stop.clone();
    let turn = tokio::select! {
        turn = turn.acquire_owned() => turn.ok()?,
        _ = stopped(&mut stopping) => return None,
    };
    loop {
        let now = Instant::now();
        let shared = scope.and_then(|scope| pacing.wait(scope, now));
        let Some(wait) = pacing.wait(url, now).max(shared) else {
            break;
        };
        tracing::debug!(
            url = %receiver.redacted(),
            wait_ms = wait.as_millis() as u64,
            "receiver's rate limit: waiting before the next request"
        );
        if !pause(wait, Some(stop)).await {
            return None;
        }
    }
    Some(turn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://discord.com/api/webhooks/1/token";

    #[test]
    fn a_hold_delays_its_url_only_until_it_ends() {
        let pacing = Pacing::new();
        let now = Instant::now();
        assert_eq!(pacing.wait(URL, now), None);
        pacing.hold(URL, now, Duration::from_millis(1500));
        assert_eq!(pacing.wait(URL, now), Some(Duration::from_millis(1500)));
        let later = now + Duration::from_secs(1);
        assert_eq!(pacing.wait(URL, later), Some(Duration::from_millis(500)));
        assert_eq!(pacing.wait(URL, now + Duration::from_secs(2)), None);
        assert_eq!(
            pacing.wait("https://discord.com/api/webhooks/2/t", now),
            None
        );
    }

    #[test]
    fn a_shorter_hold_does_not_cut_a_longer_one() {
        let pacing = Pacing::new();
        let now = Instant::now();
        pacing.hold(URL, now, Duration::from_secs(5));
        pacing.hold(URL, now, Duration::from_secs(1));
        assert_eq!(pacing.wait(URL, now), Some(Duration::from_secs(5)));
    }

    #[test]
    fn one_turn_per_url_and_unused_turns_are_swept() {
        let pacing = Pacing::new();
        let turn = pacing.turn(URL);
        assert!(
            Arc::ptr_eq(&turn, &pacing.turn(URL)),
            "one turn for one URL"
        );
        assert!(!Arc::ptr_eq(
            &turn,
            &pacing.turn("https://discord.com/api/webhooks/2/t")
        ));
        let held = turn.clone().try_acquire_owned().unwrap();
        assert!(pacing.turn(URL).try_acquire().is_err(), "taken while held");
        drop(held);
        for i in 0..SWEEP_AT {
            pacing.turn(&format!("{URL}{i}"));
        }
        let turns = pacing.turns.lock().unwrap().len();
        assert!(turns <= 3, "only turns still referenced are kept: {turns}");
    }

    #[test]
    fn ended_holds_are_swept_so_the_table_stays_bounded() {
        let pacing = Pacing::new();
        let now = Instant::now();
        for i in 0..SWEEP_AT {
            pacing.hold(&format!("{URL}{i}"), now, Duration::from_millis(1));
        }
        let later = now + Duration::from_secs(1);
        pacing.hold(URL, later, Duration::from_secs(1));
        assert_eq!(pacing.table().len(), 1);
    }
}
