//! One decode per bus message, shared by every subscription it reaches.
//!
//! The server hands a message matching N subscriptions to each of them as its own copy,
//! back to back on the connection; decoding it N times was most of a fan-out's cost.
//! The last few messages are kept with their decoded event. A pattern actor that meets
//! bytes it already took is seeing a new publish of identical bytes: that one is
//! decoded afresh, so it gets its own generated id and receive time.

use std::{cell::RefCell, collections::VecDeque, sync::Arc};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{
    bus::Subject,
    domain::{event::DecodeError, Event, TraceContext},
};

/// Copies of one message arrive together; a handful covers interleaved publishers.
const KEEP: usize = 4;

struct Entry {
    subject: Subject,
    payload: Bytes,
    msg_id: Option<String>,
    trace: Option<Arc<TraceContext>>,
    event: Arc<Event>,
    /// Pattern actors that took this event.
    takers: Vec<u64>,
}

thread_local! {
    static RECENT: RefCell<VecDeque<Entry>> = const { RefCell::new(VecDeque::new()) };
}

/// The event of a bus message for the pattern actor `taker`.
pub fn decode(
    taker: u64,
    subject: &Subject,
    payload: &Bytes,
    msg_id: Option<&str>,
    trace: Option<&Arc<TraceContext>>,
    now: DateTime<Utc>,
) -> Result<Arc<Event>, DecodeError> {
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let hit = recent.iter_mut().rev().find(|e| {
            e.payload.len() == payload.len()
                && e.subject == *subject
                && e.msg_id.as_deref() == msg_id
                && e.trace.as_ref() == trace
                && e.payload == payload
        });
        if let Some(entry) = hit {
            if !entry.takers.contains(&taker) {
                entry.takers.push(taker);
                return Ok(entry.event.clone());
            }
        }
        let event =
            Arc::new(Event::from_bus(subject, payload, msg_id, now)?.with_trace(trace.cloned()));
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(Entry {
            subject: subject.clone(),
            payload: payload.clone(),
            msg_id: msg_id.map(str::to_owned),
            trace: trace.cloned(),
            event: event.clone(),
            takers: vec![taker],
        });
        Ok(event)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn copies_of_one_message_share_one_event() {
        let body = Bytes::from_static(br#"{"payload":{"ip":"203.0.113.7"}}"#);
        let a = decode(1, &"attacker.observed".into(), &body, None, None, at()).unwrap();
        let b = decode(2, &"attacker.observed".into(), &body, None, None, at()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "decoded once");
        assert_eq!(a.id, b.id, "one generated id for every receiver");
    }

    #[test]
    fn the_same_bytes_published_again_are_a_new_event() {
        let body = Bytes::from_static(br#"{"payload":{"n":1}}"#);
        let first = decode(7, &"system.log".into(), &body, None, None, at()).unwrap();
        let again = decode(7, &"system.log".into(), &body, None, None, at()).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_ne!(first.id, again.id, "each publish its own id");
        // Another subscription taking the second publish shares it.
        let other = decode(8, &"system.log".into(), &body, None, None, at()).unwrap();
        assert!(Arc::ptr_eq(&again, &other));
    }

    #[test]
    fn subject_and_message_id_are_part_of_the_key() {
        let body = Bytes::from_static(br#"{"payload":{}}"#);
        let a = decode(1, &"a.b".into(), &body, Some("m1"), None, at()).unwrap();
        let b = decode(2, &"a.c".into(), &body, Some("m1"), None, at()).unwrap();
        let c = decode(3, &"a.b".into(), &body, Some("m2"), None, at()).unwrap();
        assert_eq!((a.topic.as_str(), b.topic.as_str()), ("a.b", "a.c"));
        assert_eq!((a.id.as_str(), c.id.as_str()), ("m1", "m2"));
    }

    #[test]
    fn undecodable_input_is_an_error_every_time() {
        let body = Bytes::from_static(b"\xff nope");
        assert!(decode(1, &"a.b".into(), &body, None, None, at()).is_err());
        assert!(decode(2, &"a.b".into(), &body, None, None, at()).is_err());
    }
}
