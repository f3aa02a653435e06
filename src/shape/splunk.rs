//! `shape = "splunk_hec"`: one Splunk HTTP Event Collector event
//! (`POST /services/collector/event`); a batch is the events concatenated.

use serde_json::{json, Map, Value};

use super::{destination::Destination, fields};
use crate::domain::Event;

pub const SOURCE: &str = "decnet";

pub fn event(event: &Event, settings: &Destination) -> Value {
    let mut out = Map::new();
    if let Some(t) = fields::time(event) {
        // Seconds with the milliseconds as a fraction, as HEC reads `time`.
        let ms = t.timestamp_millis();
        let time = if ms % 1000 == 0 {
            json!(ms / 1000)
        } else {
            json!(ms as f64 / 1000.0)
        };
        out.insert("time".into(), time);
    }
    let host = settings
        .host
        .as_deref()
        .or_else(|| fields::decky(event))
        .unwrap_or(SOURCE);
    out.insert("host".into(), json!(host));
    out.insert("source".into(), json!(SOURCE));
    let sourcetype = settings
        .sourcetype
        .clone()
        .unwrap_or_else(|| format!("decnet:{}", event.topic));
    out.insert("sourcetype".into(), json!(sourcetype));
    if let Some(index) = &settings.index {
        out.insert("index".into(), json!(index));
    }
    out.insert("event".into(), envelope(event));
    Value::Object(out)
}

/// The envelope as a JSON value (the same fields as the raw body).
pub fn envelope(event: &Event) -> Value {
    json!({
        "id": event.id,
        "payload": event.payload,
        "topic": event.topic,
        "ts": event.ts,
        "type": event.kind,
        "v": 1,
    })
}
