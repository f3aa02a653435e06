//! `shape = "slack"`: a Slack incoming-webhook message, `{"text": …}`.
//!
//! Line 1: `[DECNET] <topic> (<type>): k=v, k=v, …`; line 2: `id <id> at <ts>`.
//! The fields are the payload's top-level scalars, the well-known ones first.

use serde_json::{json, Map, Value};

use crate::domain::Event;

/// Payload keys shown first, in this order, when present.
pub const KEY_FIELDS: [&str; 7] = [
    "attacker_ip",
    "score",
    "decky",
    "state",
    "service",
    "event_type",
    "message",
];
/// Fields shown at most.
pub const MAX_FIELDS: usize = 8;
/// Characters of one value shown at most.
pub const MAX_VALUE_CHARS: usize = 100;

pub fn message(event: &Event) -> Value {
    json!({ "text": text(event) })
}

fn text(event: &Event) -> String {
    let mut line = format!("[DECNET] {}", event.topic);
    if !event.kind.is_empty() {
        line.push_str(&format!(" ({})", event.kind));
    }
    if let Value::Object(payload) = &event.payload {
        let fields = fields(payload);
        if !fields.is_empty() {
            line.push_str(": ");
            line.push_str(&fields.join(", "));
        }
    }
    line.push_str(&format!("\nid {} at {}", event.id, event.ts));
    escape(&line)
}

/// `key=value` for the payload's scalars: `KEY_FIELDS` first, then the rest in
/// key order; nulls, lists and objects are left out.
fn fields(payload: &Map<String, Value>) -> Vec<String> {
    super::fields::in_showing_order(payload, &KEY_FIELDS)
        .filter_map(|(k, v)| scalar(v).map(|v| format!("{}={v}", one_line(k))))
        .take(MAX_FIELDS)
        .collect()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(one_line(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Control characters become spaces (a value never breaks the line) and long
/// values are cut with `…`.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_VALUE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_VALUE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Slack's three control characters; escaping them also keeps a payload from
/// injecting `<!channel>`-style mentions or links.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
