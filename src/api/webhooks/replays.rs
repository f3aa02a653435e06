//! Which subscriptions this process is replaying now.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
};

/// Subscriptions being replayed by this process: two replays at once would deliver
/// the same entries twice and interleave their order.
#[derive(Default)]
pub struct Replays(Mutex<HashSet<String>>);

impl Replays {
    /// Claim `uuid` until the guard drops (also when the request is cancelled).
    pub(super) fn claim(self: &Arc<Self>, uuid: &str) -> Option<ReplayGuard> {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.insert(uuid.to_owned()).then(|| ReplayGuard {
            replays: self.clone(),
            uuid: uuid.to_owned(),
        })
    }
}

pub(super) struct ReplayGuard {
    replays: Arc<Replays>,
    uuid: String,
}

impl Drop for ReplayGuard {
    fn drop(&mut self) {
        let mut running = self
            .replays
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        running.remove(&self.uuid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_replayed_once_at_a_time() {
        let replays = Arc::new(Replays::default());
        let guard = replays.claim("a").expect("free");
        assert!(replays.claim("a").is_none());
        assert!(replays.claim("b").is_some());
        drop(guard);
        assert!(replays.claim("a").is_some());
    }
}
