//! The worker's ledger: for each subscription, what became of every event it took.
//!
//! Each event moves between places (queued, in flight) and ends in exactly one
//! outcome (filtered, delivered, dead-lettered, released); every move is one step
//! under one lock, so a snapshot taken at any instant balances:
//! `received = filtered + delivered + dead_lettered + released + queued + in_flight`.
//! The journal writes the snapshots of subscriptions that moved (`db::ledger`), so
//! the API sums every worker's share.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use crate::db::{dead_letters::Reason, ledger::Counts};

/// Where an event is, or what became of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Queued,
    InFlight,
    Filtered,
    /// Filtered because the filter failed on it.
    FilterError,
    Delivered,
    DeadLettered(Reason),
    Released,
}

/// The accounts of every subscription this worker ran.
#[derive(Debug)]
pub struct Ledger {
    worker_id: Arc<str>,
    accounts: Mutex<HashMap<Arc<str>, Account>>,
}

/// One subscription's account in this worker, shared by every actor that holds it
/// (a restart briefly runs two).
#[derive(Clone, Debug)]
pub struct Account {
    uuid: Arc<str>,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    counts: Counts,
    /// Moved since the last snapshot taken for writing.
    dirty: bool,
    /// Its metric series, looked up once.
    counters: Option<crate::metrics::EventCounters>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// A ledger under a new worker id (one per start of a worker).
    pub fn new() -> Self {
        Self {
            worker_id: uuid::Uuid::now_v7().simple().to_string().into(),
            accounts: Mutex::default(),
        }
    }

    pub fn worker_id(&self) -> &Arc<str> {
        &self.worker_id
    }

    /// The account of `uuid`, opened at zero the first time.
    pub fn account(&self, uuid: &Arc<str>) -> Account {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts
            .entry(uuid.clone())
            .or_insert_with(|| Account {
                uuid: uuid.clone(),
                state: Arc::default(),
            })
            .clone()
    }

    /// The counts of every account that moved since the last call.
    pub fn take_moved(&self) -> Vec<(String, Counts)> {
        let accounts: Vec<Account> = {
            let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            accounts.values().cloned().collect()
        };
        accounts
            .into_iter()
            .filter_map(|a| {
                let mut s = a.state.lock().unwrap_or_else(PoisonError::into_inner);
                std::mem::take(&mut s.dirty).then(|| (a.uuid.to_string(), s.counts.clone()))
            })
            .collect()
    }

    /// Mark these accounts as moved again (their write failed).
    pub fn mark_moved(&self, uuids: &[String]) {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        for uuid in uuids {
            if let Some(a) = accounts.get(uuid.as_str()) {
                a.state.lock().unwrap_or_else(PoisonError::into_inner).dirty = true;
            }
        }
    }

    /// The counts of `uuid` now (tests, logs).
    pub fn counts(&self, uuid: &str) -> Option<Counts> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts.get(uuid).map(|a| a.counts())
    }
}

impl Account {
    /// `n` events arrived and went straight to `to`.
    pub fn received(&self, to: Place, n: u64) {
        self.step_n(None, to, n);
    }

    /// `n` events moved from `from` (queued or in flight) to `to`.
    pub fn moved(&self, from: Place, to: Place, n: u64) {
        self.step_n(Some(from), to, n);
    }

    pub fn counts(&self) -> Counts {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counts
            .clone()
    }

    /// One event from `from` (or just arrived, `None`) to `to`.
    pub fn step(&self, from: Option<Place>, to: Place) {
        self.step_n(from, to, 1);
    }

    fn step_n(&self, from: Option<Place>, to: Place, n: u64) {
        if n == 0 {
            return;
        }
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let c = &mut s.counts;
            match from {
                None => c.received += n,
                Some(Place::Queued) => c.queued = c.queued.saturating_sub(n),
                Some(Place::InFlight) => c.in_flight = c.in_flight.saturating_sub(n),
                // Outcomes are final; a caller moving out of one is a bug, and the
                // counts stay as they are rather than go wrong.
                Some(other) => {
                    tracing::error!(subscription = %self.uuid, from = ?other, "ledger: an outcome cannot move");
                    return;
                }
            }
            match to {
                Place::Queued => c.queued += n,
                Place::InFlight => c.in_flight += n,
                Place::Filtered => c.filtered += n,
                Place::FilterError => {
                    c.filtered += n;
                    c.filter_errors += n;
                }
                Place::Delivered => c.delivered += n,
                Place::DeadLettered(reason) => {
                    c.dead_lettered += n;
                    *c.dead_lettered_by_reason
                        .entry(reason.as_str().to_owned())
                        .or_default() += n;
                }
                Place::Released => c.released += n,
            }
            s.dirty = true;
            let counters = &mut s.counters;
            crate::metrics::global().events_moved(
                counters,
                &self.uuid,
                from.is_none(),
                outcome(to),
                n,
            );
        }
    }
}

/// The metric label of a final place; `None` for queued and in flight (gauges).
fn outcome(place: Place) -> Option<(&'static str, Option<&'static str>)> {
    match place {
        Place::Queued | Place::InFlight => None,
        Place::Filtered => Some(("filtered", None)),
        Place::FilterError => Some(("filter_error", None)),
        Place::Delivered => Some(("delivered", None)),
        Place::DeadLettered(r) => Some(("dead_lettered", Some(r.as_str()))),
        Place::Released => Some(("released", None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_keeps_the_account_balanced() {
        let ledger = Ledger::new();
        let a = ledger.account(&Arc::from("s"));
        a.received(Place::Queued, 5);
        a.received(Place::FilterError, 1);
        a.received(Place::DeadLettered(Reason::Undecodable), 1);
        a.moved(Place::Queued, Place::InFlight, 3);
        a.moved(Place::InFlight, Place::Delivered, 2);
        a.moved(
            Place::InFlight,
            Place::DeadLettered(Reason::RetriesExhausted),
            1,
        );
        a.moved(Place::Queued, Place::Released, 1);
        let c = a.counts();
        assert!(c.balances(), "{c:?}");
        assert_eq!((c.received, c.filtered, c.filter_errors), (7, 1, 1));
        assert_eq!((c.delivered, c.dead_lettered, c.released), (2, 2, 1));
        assert_eq!((c.queued, c.in_flight), (1, 0));
        assert_eq!(c.dead_lettered_by_reason["undecodable"], 1);
        // An outcome never moves again.
        a.moved(Place::Delivered, Place::Queued, 1);
        assert_eq!(a.counts(), c);
        // Snapshots for writing: only what moved, once.
        assert_eq!(ledger.take_moved().len(), 1);
        assert!(ledger.take_moved().is_empty());
        ledger.mark_moved(&["s".to_owned()]);
        assert_eq!(ledger.take_moved().len(), 1);
    }
}
