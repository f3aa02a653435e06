//! What bounds logins: how many password checks run at once, and a growing back-off
//! for usernames and client addresses that keep failing.
//!
//! A password check is argon2 with about 19 MiB of its own memory, so unbounded
//! concurrent logins exhaust memory long before the CPU; and every failed guess costs
//! the same, so guessing has to get slower, per username and per address.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LoginSettings;

/// Keys each back-off table remembers at most; beyond, the longest quiet is forgotten.
pub const MAX_TRACKED: usize = 10_000;

/// Usernames are at most this long; a longer one names nobody, so its tail is not
/// worth remembering.
const USERNAME_KEY_CHARS: usize = crate::auth::MAX_USERNAME_CHARS;

pub struct LoginLimits {
    checks: Arc<Semaphore>,
    concurrency: usize,
    users: Backoff<String>,
    addresses: Backoff<IpAddr>,
}

impl LoginLimits {
    pub fn new(settings: &LoginSettings) -> Self {
        Self {
            checks: Arc::new(Semaphore::new(settings.concurrency)),
            concurrency: settings.concurrency,
            users: Backoff::new(
                settings.user_failures,
                settings.backoff,
                settings.backoff_max,
            ),
            addresses: Backoff::new(
                settings.address_failures,
                settings.backoff,
                settings.backoff_max,
            ),
        }
    }

    /// How long the username or the address must still wait, if either is locked out.
    pub fn locked(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let user = self.users.locked(&username_key(username), now);
        let address = address.and_then(|a| self.addresses.locked(&address_key(a), now));
        user.max(address)
    }

    /// A slot for one password check, or `None` while `concurrency` checks run. The
    /// slot must live as long as the check does, not the request: move it into the
    /// blocking task.
    pub fn try_start_check(&self) -> Option<CheckSlot> {
        let permit = self.checks.clone().try_acquire_owned().ok()?;
        Some(CheckSlot {
            permit: Some(permit),
            checks: self.checks.clone(),
            concurrency: self.concurrency,
        })
    }

    /// Count a failed login; returns the lock-out it started, if any.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let user = self.users.fail(username_key(username), now);
        let address = address.and_then(|a| self.addresses.fail(address_key(a), now));
        user.max(address)
    }

    /// A successful login clears its username's count. Not its address's: one valid
    /// account must not buy an address more guesses at the others.
    pub fn succeeded(&self, username: &str) {
        self.users.clear(&username_key(username));
    }
}

/// One running password check. When the last running check ends, the memory the
/// checks used is handed back: glibc keeps freed argon2 blocks in its arenas otherwise.
pub struct CheckSlot {
    permit: Option<OwnedSemaphorePermit>,
    checks: Arc<Semaphore>,
    concurrency: usize,
}

impl Drop for CheckSlot {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.checks.available_permits() == self.concurrency {
            crate::memory::release_free_heap();
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up so that a client waiting that long
/// finds the lock gone.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

fn username_key(username: &str) -> String {
    username.chars().take(USERNAME_KEY_CHARS).collect()
}

/// An IPv6 client usually holds a whole /64, so that is what one address is.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Consecutive failures per key: after `free` of them the key is locked out for
/// `first`, doubled by every further failure up to `max`. A key is forgotten once it
/// has been quiet (unlocked, no failure) for `max`, so a lock-out never outlives its
/// count, and at most [`MAX_TRACKED`] keys are kept.
struct Backoff<K> {
    free: u32,
    first: Duration,
    max: Duration,
    entries: Mutex<HashMap<K, Entry>>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    /// Since when the key has been quiet: its last failure, or the end of its lock-out.
    quiet_from: Instant,
    locked_until: Option<Instant>,
}

impl Entry {
    fn forgotten(&self, now: Instant, max: Duration) -> bool {
        now.saturating_duration_since(self.quiet_from) >= max
    }
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    fn new(free: u32, first: Duration, max: Duration) -> Self {
        Self {
            free,
            first,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let until = entries.get(key)?.locked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    fn fail(&self, key: K, now: Instant) -> Option<Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(&key) && entries.len() >= MAX_TRACKED {
            entries.retain(|_, e| !e.forgotten(now, self.max));
            if entries.len() >= MAX_TRACKED {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.quiet_from)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            quiet_from: now,
            locked_until: None,
        });
        if entry.forgotten(now, self.max) {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.quiet_from = now;
        entry.locked_until = None;
        let beyond = entry.failures.checked_sub(self.free)?;
        // 2^beyond, without overflowing: the cap is reached long before.
        let lock = self
            .first
            .saturating_mul(1u32 << beyond.min(31))
            .min(self.max);
        entry.locked_until = Some(now + lock);
        entry.quiet_from = now + lock;
        Some(lock)
    }

    fn clear(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn locks_after_the_free_failures_doubling_up_to_the_cap() {
        let b = Backoff::new(3, S, 8 * S);
        let mut now = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.fail("k", now), None);
            assert_eq!(b.locked(&"k", now), None);
        }
        let mut locks = Vec::new();
        for _ in 0..6 {
            let lock = b.fail("k", now).expect("locked");
            assert_eq!(b.locked(&"k", now), Some(lock));
            // Still locked a moment before the end, free at the end.
            assert!(b
                .locked(&"k", now + lock - Duration::from_millis(1))
                .is_some());
            now += lock;
            assert_eq!(b.locked(&"k", now), None);
            locks.push(lock.as_secs());
        }
        assert_eq!(locks, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.locked(&"other", now), None);
    }

    #[test]
    fn a_quiet_key_is_forgotten_only_after_its_lock_and_the_cap() {
        let b = Backoff::new(2, S, 4 * S);
        let t0 = Instant::now();
        b.fail("k", t0);
        assert_eq!(b.fail("k", t0), Some(S));
        // Coming back the moment the lock ends does not reset the count.
        assert_eq!(b.fail("k", t0 + S), Some(2 * S));
        // Quiet for the cap after the lock ended: counted from zero again.
        let later = t0 + 3 * S + 4 * S;
        assert_eq!(b.fail("k", later), None);
        assert_eq!(b.fail("k", later), Some(S));
    }

    #[test]
    fn clearing_resets_the_count() {
        let b = Backoff::new(2, S, 4 * S);
        let now = Instant::now();
        b.fail("k", now);
        b.clear(&"k");
        assert_eq!(b.fail("k", now), None);
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_quietest() {
        let b = Backoff::new(1, S, 60 * S);
        let t0 = Instant::now();
        b.fail(0usize, t0);
        for i in 1..=MAX_TRACKED {
            b.fail(i, t0 + S);
        }
        assert_eq!(b.len(), MAX_TRACKED);
        // Key 0 was the quietest, so it made room.
        assert_eq!(b.locked(&0, t0 + S), None);
        assert!(b.locked(&MAX_TRACKED, t0 + S).is_some());
    }

    #[test]
    fn limits_count_users_and_addresses_apart() {
        let limits = LoginLimits::new(&LoginSettings {
            concurrency: 1,
            user_failures: 2,
            address_failures: 3,
            backoff: S,
            backoff_max: 10 * S,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limits.failed("alice", Some(a)), None);
        // Alice's second failure locks alice, from any address.
        assert!(limits.failed("alice", Some(b)).is_some());
        assert!(limits.locked("alice", None).is_some());
        assert!(limits.locked("bob", Some(b)).is_none());
        // Address a's third failure locks a, for any username.
        limits.failed("bob", Some(a));
        assert!(limits.failed("carol", Some(a)).is_some());
        assert!(limits.locked("dave", Some(a)).is_some());
        // Success clears the username, not the address.
        limits.succeeded("alice");
        assert!(limits.locked("alice", None).is_none());
        assert!(limits.locked("alice", Some(a)).is_some());
    }

    #[test]
    fn one_ipv6_client_is_its_slash_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(one), address_key(same));
        assert_ne!(address_key(one), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn long_usernames_share_one_key() {
        let long = "x".repeat(10_000);
        assert_eq!(username_key(&long).chars().count(), USERNAME_KEY_CHARS);
    }

    #[test]
    fn check_slots_are_bounded_and_come_back() {
        let limits = LoginLimits::new(&LoginSettings {
            concurrency: 2,
            user_failures: 1,
            address_failures: 1,
            backoff: S,
            backoff_max: S,
        });
        let first = limits.try_start_check().expect("a slot");
        let second = limits.try_start_check().expect("a second slot");
        assert!(limits.try_start_check().is_none());
        drop(first);
        let third = limits.try_start_check().expect("a freed slot");
        drop((second, third));
        assert_eq!(limits.checks.available_permits(), 2);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
