//! Events in from the bus, and the envelope body out to receivers.

use bytes::Bytes;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Value};

use super::trace::TraceContext;

/// The `X-DECNET-Event-Topic` of a batch.
pub const BATCH_TOPIC: &str = "batch";

/// One bus event, its envelope body built once and shared by every subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: String,
    pub topic: String,
    pub ts: String,
    pub kind: String,
    pub payload: Value,
    /// Compact JSON `{"id","payload","topic","ts","type","v":1}`, keys sorted at every depth.
    pub body: Bytes,
    /// The bus message's trace context, passed on to the receiver.
    pub trace: Option<Arc<TraceContext>>,
    /// For a body that is its items concatenated (a `_bulk` batch), the items, so
    /// the ones a receiver asks to retry can be sent again alone.
    pub parts: Option<Arc<[Bytes]>>,
}

#[derive(Debug, thiserror::Error)]
#[error("body is not JSON: {0}")]
pub struct DecodeError(pub String);

impl Event {
    /// Build an event from explicit parts.
    pub fn new(id: String, topic: String, ts: String, kind: String, payload: Value) -> Self {
        let body = envelope_body(&id, &payload, &topic, &ts, &kind);
        Self {
            id,
            topic,
            ts,
            kind,
            payload,
            body,
            trace: None,
            parts: None,
        }
    }

    /// The same event carrying `trace`.
    pub fn with_trace(mut self, trace: Option<Arc<TraceContext>>) -> Self {
        self.trace = trace;
        self
    }

    /// A body to send as it is: a shaped event or a batch. Only `id`, `topic` and
    /// `body` go on the wire.
    pub fn outgoing(id: String, topic: String, body: Bytes) -> Self {
        Self {
            id,
            topic,
            ts: String::new(),
            kind: String::new(),
            payload: Value::Null,
            body,
            trace: None,
            parts: None,
        }
    }

    /// Several bodies posted together as `{"events":[…]}` under a fresh batch id,
    /// topic `batch`. The bodies are compact JSON already and are copied as they are.
    pub fn batch(bodies: &[&[u8]]) -> Self {
        let len = bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 12;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(b"{\"events\":[");
        for (i, body) in bodies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(body);
        }
        out.extend_from_slice(b"]}");
        Self::outgoing(
            uuid::Uuid::now_v7().to_string(),
            BATCH_TOPIC.to_owned(),
            Bytes::from(out),
        )
    }

    /// Decode a bus message: an object with a `payload` key is an event, any other
    /// JSON value is the payload itself; `id` falls back to `msg_id` (the
    /// `Nats-Msg-Id` header), then a new UUID; `ts` to the receive time.
    pub fn from_bus(
        subject: &str,
        body: &[u8],
        msg_id: Option<&str>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, DecodeError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))?;
        let (id, ts, kind, payload) = match value {
            Value::Object(mut obj) if obj.contains_key("payload") => {
                let payload = obj.remove("payload").unwrap_or(Value::Null);
                (
                    obj.remove("id"),
                    obj.remove("ts"),
                    obj.remove("type"),
                    payload,
                )
            }
            other => (None, None, None, other),
        };
        let id = match id {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => msg_id
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        };
        let ts = match ts {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n
                .as_f64()
                .and_then(epoch_to_datetime)
                .map(iso)
                .unwrap_or_else(|| iso(received_at)),
            _ => iso(received_at),
        };
        let kind = match kind {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        Ok(Self::new(id, subject.to_owned(), ts, kind, payload))
    }
}

fn epoch_to_datetime(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    let whole = secs.floor();
    let micros = ((secs - whole) * 1_000_000.0).round() as u32;
    DateTime::from_timestamp(whole as i64, micros.min(999_999) * 1000)
}

/// ISO-8601 as Python's `datetime.isoformat()` writes UTC: `+00:00`, microseconds
/// only when non-zero.
pub fn iso(ts: DateTime<Utc>) -> String {
    let ts = ts
        .with_nanosecond(ts.nanosecond() / 1000 * 1000)
        .unwrap_or(ts);
    let format = if ts.nanosecond() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    ts.to_rfc3339_opts(format, false)
}

/// The envelope as compact JSON with keys sorted at every depth.
pub fn envelope_body(id: &str, payload: &Value, topic: &str, ts: &str, kind: &str) -> Bytes {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"id\":");
    write_str(&mut out, id);
    out.extend_from_slice(b",\"payload\":");
    write_sorted(&mut out, payload);
    out.extend_from_slice(b",\"topic\":");
    write_str(&mut out, topic);
    out.extend_from_slice(b",\"ts\":");
    write_str(&mut out, ts);
    out.extend_from_slice(b",\"type\":");
    write_str(&mut out, kind);
    out.extend_from_slice(b",\"v\":1}");
    Bytes::from(out)
}

/// Sorted-keys compact JSON of any value (independent of serde_json's map order).
pub fn to_sorted_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_sorted(&mut out, value);
    out
}

fn write_sorted(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => write_object(out, map),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(out, item);
            }
            out.push(b']');
        }
        Value::String(s) => write_str(out, s),
        // The same digits as `Number`'s Display, written in place.
        Value::Number(n) => {
            if serde_json::to_writer(&mut *out, n).is_err() {
                out.extend_from_slice(b"null");
            }
        }
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    // Byte order of UTF-8 equals code-point order, as Python's sort_keys. serde_json's
    // map iterates in that order unless a dependency turns on `preserve_order`: only
    // then is a sorted copy of the entries needed.
    if map.keys().is_sorted() {
        write_entries(out, map.iter());
    } else {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        write_entries(out, entries.into_iter());
    }
}

fn write_entries<'a>(out: &mut Vec<u8>, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_sorted(out, v);
    }
    out.push(b'}');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes quotes, backslashes and control characters, and keeps UTF-8.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 24, 10, 0, 0).unwrap()
    }

    #[test]
    fn envelope_object_is_an_event() {
        let e = Event::from_bus(
            "attacker.observed",
            br#"{"id":"e1","ts":"2026-04-24T10:00:00+00:00","type":"t","payload":{"b":1,"a":2}}"#,
            None,
            at(),
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&e.body).unwrap(),
            r#"{"id":"e1","payload":{"a":2,"b":1},"topic":"attacker.observed","ts":"2026-04-24T10:00:00+00:00","type":"t","v":1}"#
        );
    }

    #[test]
    fn keys_are_sorted_by_code_point_at_every_depth() {
        let value: Value = serde_json::from_str(
            r#"{"z":[{"y":1,"x":-2}],"é":1.5,"a":{"c":null,"b":true},"Z":18446744073709551615,"aa":"q\"\n"}"#,
        )
        .unwrap();
        // What Python's json.dumps(sort_keys=True, separators=(",", ":"),
        // ensure_ascii=False) writes for the same value.
        assert_eq!(
            std::str::from_utf8(&to_sorted_json(&value)).unwrap(),
            r#"{"Z":18446744073709551615,"a":{"b":true,"c":null},"aa":"q\"\n","z":[{"x":-2,"y":1}],"é":1.5}"#
        );
    }

    #[test]
    fn bare_value_is_the_payload_with_defaults() {
        let e = Event::from_bus("system.log", br#"{"msg":"x"}"#, Some("nats-1"), at()).unwrap();
        assert_eq!(e.id, "nats-1");
        assert_eq!(e.ts, "2026-04-24T10:00:00+00:00");
        assert_eq!(e.payload, serde_json::json!({"msg":"x"}));
        let e = Event::from_bus("system.log", b"[1,2]", None, at()).unwrap();
        assert_eq!(e.id.len(), 32);
        assert_eq!(e.payload, serde_json::json!([1, 2]));
    }

    #[test]
    fn epoch_ts_becomes_iso_utc() {
        let e =
            Event::from_bus("a.b", br#"{"ts":1777024801.25,"payload":{}}"#, None, at()).unwrap();
        assert_eq!(e.ts, "2026-04-24T10:00:01.250000+00:00");
        let e = Event::from_bus("a.b", br#"{"ts":1777024800,"payload":{}}"#, None, at()).unwrap();
        assert_eq!(e.ts, "2026-04-24T10:00:00+00:00");
    }

    #[test]
    fn batch_wraps_bodies_in_order() {
        let a = Event::new(
            "a".into(),
            "t.x".into(),
            "ts".into(),
            "k".into(),
            Value::Null,
        );
        let b = Event::new(
            "b".into(),
            "t.y".into(),
            "ts".into(),
            "k".into(),
            Value::Null,
        );
        let batch = Event::batch(&[&a.body, &b.body]);
        let parsed: Value = serde_json::from_slice(&batch.body).unwrap();
        let ids: Vec<&str> = parsed["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(batch.topic, BATCH_TOPIC);
        assert!(uuid::Uuid::parse_str(&batch.id).is_ok());
    }

    #[test]
    fn non_json_is_an_error_not_a_panic() {
        assert!(Event::from_bus("a.b", b"\xff not json", None, at()).is_err());
        assert!(Event::from_bus("a.b", b"", None, at()).is_err());
    }
}
