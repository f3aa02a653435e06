//! The admin API over real HTTP.

mod auth;
mod bus_signal;
mod console;
mod crud;
mod dead_letters;
mod deliveries;
mod destinations;
mod edge;
mod filters;
mod input;
mod limits;
mod login_limits;
mod openapi;
mod options;
mod rbac;
mod replay;
mod sessions;
mod stats;
mod test_ping;
mod validation;

use serde_json::{json, Value};

/// A body that passes every check without contacting anything.
pub fn valid_webhook(name: &str) -> Value {
    json!({
        "name": name,
        "url": "https://1.1.1.1/hook",
        "topic_patterns": ["attacker.>"],
    })
}
