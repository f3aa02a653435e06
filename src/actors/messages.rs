//! Messages that cross actors.

use std::sync::Arc;

use actix::Message;

use crate::{
    delivery::{DeliveryOutcome, Target},
    domain::Event,
};

/// Re-read subscriptions and converge the running set on them.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Reload;

/// One decoded bus event for a subscription.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Incoming {
    pub event: Arc<Event>,
    /// The stream sequence (durable mode).
    pub seq: Option<u64>,
    /// Acknowledges it once delivered or dead-lettered (durable mode).
    pub ack: Option<crate::durable::Acker>,
}

/// POST one event to one target with the full retry schedule.
#[derive(Message)]
#[rtype(result = "DeliveryOutcome")]
pub struct Deliver {
    pub target: Arc<Target>,
    pub event: Arc<Event>,
}

/// What one delivery came to, for the circuit breaker; answers whether the circuit
/// tripped on it, so the subscription stops before it starts another delivery.
#[derive(Message, Clone, Debug)]
#[rtype(result = "bool")]
pub struct Outcome {
    pub uuid: Arc<str>,
    pub name: Arc<str>,
    pub outcome: DeliveryOutcome,
}

/// The circuit of a subscription tripped: stop it now.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Tripped {
    pub uuid: Arc<str>,
}

/// A subscription (re)started: forget any circuit state kept for it.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct ResetCircuit {
    pub uuid: Arc<str>,
}

/// Stop consuming, let in-flight deliveries finish (bounded), then stop.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Drain(pub DrainReason);

/// Why a subscription stops, which decides what becomes of its queued events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainReason {
    /// Deleted or paused by an operator: queued events are dropped.
    Removed,
    /// Its patterns changed: the queue is still delivered, then it stops.
    Restarted,
    /// Its circuit tripped: queued events are dead-lettered.
    Tripped,
    /// The worker stops: queued events are dead-lettered for replay.
    Shutdown,
}

/// Persist every pending state write (bounded), then answer.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Flush;

/// A subscription is consuming: every pattern is subscribed on the bus server.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Ready {
    pub uuid: Arc<str>,
}
