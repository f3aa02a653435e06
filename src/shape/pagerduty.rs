//! `shape = "pagerduty"`: a PagerDuty Events API v2 trigger
//! (`POST https://events.pagerduty.com/v2/enqueue`). The routing key is not part of
//! the stored body: the sender adds it on the wire (it is a secret, and bodies are
//! kept in dead letters).

use serde_json::{json, Map, Value};

use super::{
    destination::{Destination, Severity},
    fields,
    splunk::envelope,
};
use crate::domain::Event;

/// PagerDuty's limits on `summary` and `dedup_key`.
pub const MAX_SUMMARY_CHARS: usize = 1024;
pub const MAX_DEDUP_KEY_CHARS: usize = 255;

pub fn trigger(event: &Event, settings: &Destination) -> Value {
    let ip = fields::attacker_ip(event);
    let decky = fields::decky(event);
    let mut summary = format!("DECNET {}", fields::headline(event));
    if let Some(ip) = ip {
        summary.push_str(&format!(" from {ip}"));
    }
    if let Some(decky) = decky {
        summary.push_str(&format!(" on {decky}"));
    }
    let mut payload = Map::new();
    payload.insert(
        "summary".into(),
        json!(fields::plain(&summary, MAX_SUMMARY_CHARS)),
    );
    payload.insert("source".into(), json!(decky.unwrap_or("decnet")));
    payload.insert(
        "severity".into(),
        json!(severity(event, settings.min_severity).as_str()),
    );
    if fields::time(event).is_some() {
        payload.insert("timestamp".into(), json!(event.ts));
    }
    if let Some(service) = fields::service(event) {
        payload.insert("component".into(), json!(service));
    }
    if let Some(decky) = decky {
        payload.insert("group".into(), json!(decky));
    }
    payload.insert("class".into(), json!(event.topic));
    payload.insert("custom_details".into(), envelope(event));
    json!({
        "event_action": "trigger",
        "dedup_key": dedup_key(event),
        "payload": payload,
    })
}

/// One incident per attacker and decoy: repeats group under it. Events with
/// neither are their own incident.
pub fn dedup_key(event: &Event) -> String {
    let ip = fields::attacker_ip(event);
    let decky = fields::decky(event);
    let key = if ip.is_none() && decky.is_none() {
        format!("decnet:{}:{}", event.topic, event.id)
    } else {
        format!("decnet:{}:{}", ip.unwrap_or("-"), decky.unwrap_or("-"))
    };
    fields::plain(&key, MAX_DEDUP_KEY_CHARS)
}

/// The event's severity: `warning` for attacker topics, `info` otherwise; raised by
/// a `score` (20 warning, 50 error, 80 critical), and never below `min`.
pub fn severity(event: &Event, min: Option<Severity>) -> Severity {
    let by_topic = if event.topic.starts_with("attacker.") {
        Severity::Warning
    } else {
        Severity::Info
    };
    let by_score = match fields::score(event) {
        Some(s) if s >= 80.0 => Severity::Critical,
        Some(s) if s >= 50.0 => Severity::Error,
        Some(s) if s >= 20.0 => Severity::Warning,
        _ => Severity::Info,
    };
    by_topic.max(by_score).max(min.unwrap_or(Severity::Info))
}
