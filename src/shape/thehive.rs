//! `shape = "thehive"`: a TheHive 5 alert (`POST /api/v1/alert`).

use std::net::IpAddr;

use chrono::DateTime;
use serde_json::{json, Map, Value};

use crate::domain::{event::to_sorted_json, Event};

pub const SOURCE: &str = "decnet";

pub fn alert(event: &Event) -> Value {
    let attacker_ip = event
        .payload
        .get("attacker_ip")
        .and_then(Value::as_str)
        .filter(|ip| ip.parse::<IpAddr>().is_ok());

    let mut title = format!("DECNET {}", event.topic);
    if !event.kind.is_empty() {
        title.push_str(&format!(" ({})", event.kind));
    }
    if let Some(ip) = attacker_ip {
        title.push_str(&format!(" from {ip}"));
    }

    let payload = String::from_utf8_lossy(&to_sorted_json(&event.payload)).into_owned();
    let mut description = format!("Topic: {}\n", event.topic);
    if !event.kind.is_empty() {
        description.push_str(&format!("Type: {}\n", event.kind));
    }
    description.push_str(&format!(
        "Event id: {}\nTime: {}\n\n```json\n{payload}\n```",
        event.id, event.ts
    ));

    let mut tags = vec![SOURCE.to_owned(), format!("topic:{}", event.topic)];
    if !event.kind.is_empty() {
        tags.push(format!("type:{}", event.kind));
    }

    let observables: Vec<Value> = attacker_ip
        .map(|ip| json!({"dataType": "ip", "data": ip, "message": "attacker IP", "tags": ["attacker"]}))
        .into_iter()
        .collect();

    let mut alert = Map::new();
    alert.insert("type".into(), json!(event.topic));
    alert.insert("source".into(), json!(SOURCE));
    alert.insert("sourceRef".into(), json!(event.id));
    alert.insert("title".into(), json!(title));
    alert.insert("description".into(), json!(description));
    alert.insert("severity".into(), json!(severity(&event.topic)));
    // An unparsable ts is left out: TheHive then dates the alert on receipt.
    if let Ok(ts) = DateTime::parse_from_rfc3339(&event.ts) {
        alert.insert("date".into(), json!(ts.timestamp_millis()));
    }
    alert.insert("tags".into(), json!(tags));
    alert.insert("observables".into(), json!(observables));
    Value::Object(alert)
}

/// TheHive's 1 (low) to 4 (critical): attacker activity is medium, the rest low.
fn severity(topic: &str) -> u8 {
    if topic.starts_with("attacker.") {
        2
    } else {
        1
    }
}
