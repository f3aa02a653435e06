//! Acknowledgements of held JetStream messages (durable mode). One task per worker
//! sends them all: the final ack or nak of each message, and every so often an
//! in-progress ack for each message still being worked on, so a slow delivery with
//! retries is not handed to another worker. A message costs an entry in a table, not
//! a task and a timer of its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, AckKind};
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};

type Message = Arc<jetstream::Message>;

/// The worker's acknowledgements: cheap to clone, one per durable source.
#[derive(Clone)]
pub struct Acknowledger(Arc<Shared>);

struct Shared {
    /// How often a held message is reported in progress.
    every: Duration,
    held: Mutex<Held>,
    settle: mpsc::UnboundedSender<(Message, AckKind)>,
}

#[derive(Default)]
struct Held {
    next_id: u64,
    messages: HashMap<u64, Progress>,
}

struct Progress {
    message: Message,
    /// When it is next reported in progress.
    due: Instant,
}

impl Acknowledger {
    /// Report each held message in progress every `every` until it is settled. Made
    /// inside the worker's runtime, where its task runs: the task lives while a
    /// message may still be settled, and ends when the last handle (this or an
    /// [`Acker`]) is gone and every settlement it was given is sent.
    pub fn new(every: Duration) -> Self {
        let (settle, settled) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            every,
            held: Mutex::new(Held::default()),
            settle,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(run(Arc::downgrade(&shared), settled, every));
            }
            Err(_) => tracing::error!(
                "no runtime to send JetStream acknowledgements from; held messages will be redelivered"
            ),
        }
        Self(shared)
    }

    /// Hold `message` until its [`Acker`] settles it or is dropped.
    pub fn hold(&self, message: jetstream::Message) -> Acker {
        let message = Arc::new(message);
        let due = Instant::now() + self.0.every;
        let id = self.0.with_held(|held| {
            let id = held.next_id;
            held.next_id += 1;
            held.messages.insert(
                id,
                Progress {
                    message: message.clone(),
                    due,
                },
            );
            id
        });
        Acker(Arc::new(Holding {
            id,
            message,
            shared: self.0.clone(),
        }))
    }
}

impl Shared {
    fn with_held<T>(&self, f: impl FnOnce(&mut Held) -> T) -> T {
        // Nothing panics while holding the lock; a poisoned table is still whole.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut held)
    }

    fn forget(&self, id: u64) {
        self.with_held(|held| held.messages.remove(&id));
    }

    /// The messages due an in-progress report, each made due again `every` later.
    fn due(&self, now: Instant) -> Vec<Message> {
        self.with_held(|held| {
            held.messages
                .values_mut()
                .filter(|p| p.due <= now)
                .map(|p| {
                    p.due = now + self.every;
                    p.message.clone()
                })
                .collect()
        })
    }
}

async fn run(
    shared: std::sync::Weak<Shared>,
    mut settled: mpsc::UnboundedReceiver<(Message, AckKind)>,
    every: Duration,
) {
    // Ticking at half the period reports a message within 1.5 periods of being held,
    // and then at most 1.5 periods apart.
    let mut tick = tokio::time::interval(every / 2);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = settled.recv() => match next {
                Some((message, kind)) => send(&message, kind).await,
                // Every handle is gone and every settlement sent.
                None => return,
            },
            _ = tick.tick() => {
                let due = match shared.upgrade() {
                    Some(shared) => shared.due(Instant::now()),
                    None => continue,
                };
                for message in due {
                    send(&message, AckKind::Progress).await;
                }
            }
        }
    }
}

async fn send(message: &jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        match kind {
            AckKind::Progress => {
                tracing::debug!(error = %e, "JetStream in-progress ack failed");
            }
            _ => {
                tracing::warn!(error = %e, "JetStream acknowledgement failed; the message will be redelivered");
            }
        }
    }
}

/// Acknowledges one held message once its fate is settled; dropped unsettled, the
/// message is left to the server to redeliver after its ack wait.
#[derive(Clone)]
pub struct Acker(Arc<Holding>);

struct Holding {
    id: u64,
    message: Message,
    shared: Arc<Shared>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

impl std::fmt::Debug for Acker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acker")
    }
}

impl Acker {
    /// Delivered or dead-lettered: never again.
    pub fn ack(&self) {
        self.send(AckKind::Ack);
    }

    /// Not handled here (shutdown): hand it to the next worker now.
    pub fn nak(&self) {
        self.send(AckKind::Nak(None));
    }

    fn send(&self, kind: AckKind) {
        let Holding {
            id,
            message,
            shared,
        } = &*self.0;
        shared.forget(*id);
        if shared.settle.send((message.clone(), kind)).is_err() {
            tracing::warn!("JetStream acknowledgement not sent (the worker is stopping); the message will be redelivered");
        }
    }
}
