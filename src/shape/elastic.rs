//! `shape = "elastic_bulk"`: one `_bulk` create action and its document, the
//! document mapped to ECS with the envelope under `decnet`. A batch is the pairs
//! concatenated; every line ends with a newline.

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{destination::Destination, fields, splunk::envelope};
use crate::domain::{event::to_sorted_json, Event};

/// The action line and the document line, each ending in `\n`.
pub fn lines(event: &Event, settings: &Destination) -> Vec<u8> {
    let at = fields::time(event);
    let index = settings.elastic_index_at(at.unwrap_or_else(Utc::now));
    // `create` with the event id: a retry of an indexed event is a 409, never a copy.
    let action = json!({"create": {"_index": index, "_id": event.id}});
    let mut out = to_sorted_json(&action);
    out.push(b'\n');
    out.extend_from_slice(&to_sorted_json(&document(event)));
    out.push(b'\n');
    out
}

fn document(event: &Event) -> Value {
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(fields::timestamp(event)));
    let (kind, category) = classify(&event.topic);
    let action = if event.kind.is_empty() {
        event.topic.as_str()
    } else {
        event.kind.as_str()
    };
    doc.insert(
        "event".into(),
        json!({
            "kind": kind,
            "category": [category],
            "action": action,
            "id": event.id,
            "dataset": format!("decnet.{}", event.topic),
            "module": "decnet",
        }),
    );
    if let Some(ip) = fields::attacker_ip(event) {
        doc.insert("source".into(), json!({"ip": ip}));
    }
    let mut observer = Map::new();
    observer.insert("type".into(), json!("honeypot"));
    observer.insert("vendor".into(), json!("DECNET"));
    observer.insert("product".into(), json!("decnet"));
    if let Some(decky) = fields::decky(event) {
        observer.insert("name".into(), json!(decky));
    }
    doc.insert("observer".into(), Value::Object(observer));
    if let Some(service) = fields::service(event) {
        doc.insert("service".into(), json!({"name": service}));
    }
    doc.insert("tags".into(), json!(["decnet"]));
    doc.insert("decnet".into(), envelope(event));
    Value::Object(doc)
}

/// ECS `event.kind` and `event.category` by topic.
fn classify(topic: &str) -> (&'static str, &'static str) {
    if topic.starts_with("attacker.") {
        ("alert", "intrusion_detection")
    } else if topic.starts_with("decky.") && topic.ends_with(".traffic") {
        ("metric", "network")
    } else if topic.starts_with("decky.") {
        ("state", "host")
    } else {
        ("event", "host")
    }
}
