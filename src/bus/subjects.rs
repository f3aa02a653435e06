//! The subjects the service itself publishes and listens on.

/// The API announces a subscription change; workers reload.
pub const SUBSCRIPTIONS_CHANGED: &str = "system.webhook.subscriptions_changed";
/// A worker announces that a subscription's circuit tripped.
pub const CIRCUIT_TRIPPED: &str = "system.webhook.circuit_tripped";
/// A worker's periodic heartbeat.
pub const HEALTH: &str = "system.webhook.health";
/// `{"action":"stop"}` here stops every worker.
pub const CONTROL: &str = "system.webhook.control";
