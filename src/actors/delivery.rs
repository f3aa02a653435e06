//! DeliveryActor: a shared pool of HTTP senders, one per Arbiter (thread), each with
//! its own awc client and connection pool.

use std::{
    rc::Rc,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use actix::{Actor, Arbiter, Context, Handler, MailboxError, Message, Recipient, ResponseFuture};
use tokio::sync::watch;

use crate::{
    delivery::{DeliveryClient, DeliveryOutcome, DeliverySettings, Target},
    domain::Event,
};

/// POST one event to one target with the full retry schedule.
#[derive(Message)]
#[rtype(result = "DeliveryOutcome")]
pub struct Deliver {
    pub target: Arc<Target>,
    pub event: Arc<Event>,
}

pub struct DeliveryActor {
    client: Rc<DeliveryClient>,
    stop: watch::Receiver<bool>,
}

impl Actor for DeliveryActor {
    type Context = Context<Self>;
}

impl Handler<Deliver> for DeliveryActor {
    type Result = ResponseFuture<DeliveryOutcome>;

    /// Each delivery runs as its own task on this thread: one slow receiver never
    /// blocks the others sharing the actor.
    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        let stop = self.stop.clone();
        Box::pin(async move { client.deliver(&msg.target, &msg.event, &stop).await })
    }
}

/// Handle on the pool: cheap to clone, picks actors round-robin.
#[derive(Clone)]
pub struct DeliveryPool {
    actors: Arc<[Recipient<Deliver>]>,
    next: Arc<AtomicUsize>,
    _arbiters: Arc<[ArbiterGuard]>,
}

/// Stops its arbiter thread when the last pool handle goes.
struct ArbiterGuard(Arbiter);

impl Drop for ArbiterGuard {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl DeliveryPool {
    /// Start `size` senders, each on an Arbiter of its own.
    pub fn start(size: usize, settings: DeliverySettings, stop: watch::Receiver<bool>) -> Self {
        let mut actors = Vec::with_capacity(size);
        let mut arbiters = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            let arbiter = Arbiter::new();
            let settings = settings.clone();
            let stop = stop.clone();
            let addr = DeliveryActor::start_in_arbiter(&arbiter.handle(), move |_| DeliveryActor {
                client: Rc::new(DeliveryClient::new(settings)),
                stop,
            });
            actors.push(addr.recipient());
            arbiters.push(ArbiterGuard(arbiter));
        }
        Self {
            actors: actors.into(),
            next: Arc::new(AtomicUsize::new(0)),
            _arbiters: arbiters.into(),
        }
    }

    /// A pool over any recipients (tests put probes here).
    pub fn from_recipients(actors: Vec<Recipient<Deliver>>) -> Self {
        Self {
            actors: actors.into(),
            next: Arc::new(AtomicUsize::new(0)),
            _arbiters: Arc::new([]),
        }
    }

    /// Send one delivery to the next actor; resolves with its outcome.
    pub async fn deliver(&self, msg: Deliver) -> Result<DeliveryOutcome, MailboxError> {
        if self.actors.is_empty() {
            return Err(MailboxError::Closed);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.actors.len();
        self.actors[i].send(msg).await
    }
}
