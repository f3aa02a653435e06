//! The NATS bus: the connection, the subjects of the service's own traffic, event
//! streams for pattern actors (core subscriptions or JetStream consumers), and the
//! control signals workers listen to.

pub mod acks;
pub mod connection;
pub mod durable;
pub mod signals;
pub mod source;
pub mod subjects;

pub use acks::Acker;
/// A message's subject: shares the bytes the client read, so taking it allocates nothing.
pub use async_nats::Subject;
pub use connection::Bus;
pub use signals::{bus_signals, Signal};
pub use source::{BusMessage, PatternSource};
pub use subjects::{CIRCUIT_TRIPPED, CONTROL, HEALTH, SUBSCRIPTIONS_CHANGED};
