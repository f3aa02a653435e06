//! What the destination shapes read from an event, and how they make its
//! attacker-controlled strings safe for each target.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::Event;

/// The payload's entries in the order chat messages show them: the keys of `first`
/// that are present, in that order, then the others in key order.
pub fn in_showing_order<'a>(
    payload: &'a Map<String, Value>,
    first: &'a [&str],
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    let known = first.iter().filter_map(|k| payload.get_key_value(*k));
    let mut rest: Vec<(&String, &Value)> = payload
        .iter()
        .filter(|(k, _)| !first.contains(&k.as_str()))
        .collect();
    rest.sort_unstable_by(|a, b| a.0.cmp(b.0));
    known.chain(rest)
}

/// The payload's `attacker_ip`, when it is an IP address.
pub fn attacker_ip(event: &Event) -> Option<&str> {
    event
        .payload
        .get("attacker_ip")
        .and_then(Value::as_str)
        .filter(|ip| ip.parse::<IpAddr>().is_ok())
}

/// The decoy: the payload's `decky`, else the `<id>` of a `decky.<id>.…` topic.
pub fn decky(event: &Event) -> Option<&str> {
    if let Some(d) = event.payload.get("decky").and_then(Value::as_str) {
        return Some(d).filter(|d| !d.is_empty());
    }
    let mut tokens = event.topic.split('.');
    match (tokens.next(), tokens.next(), tokens.next()) {
        (Some("decky"), Some(id), Some(_)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

/// The payload's `service`, when it is a non-empty string.
pub fn service(event: &Event) -> Option<&str> {
    event
        .payload
        .get("service")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The payload's numeric `score`.
pub fn score(event: &Event) -> Option<f64> {
    event
        .payload
        .get("score")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite())
}

/// The event's `ts`, when it is ISO-8601.
pub fn time(event: &Event) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&event.ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The event's `ts` when it is ISO-8601, else the current time in that format
/// (a SIEM refuses a record whose time it cannot read).
pub fn timestamp(event: &Event) -> String {
    if time(event).is_some() {
        event.ts.clone()
    } else {
        crate::domain::event::iso(Utc::now())
    }
}

/// `<topic>`, then ` (<type>)` when the type is not empty.
pub fn headline(event: &Event) -> String {
    if event.kind.is_empty() {
        event.topic.clone()
    } else {
        format!("{} ({})", event.topic, event.kind)
    }
}

/// A scalar payload value as text; `None` for null, lists and objects.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Control characters become spaces (nothing breaks a line or a layout) and the
/// text is cut to `max` characters, the last one then `…`.
pub fn plain(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().nth(max).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// Markdown made literal: the characters that make emphasis, code, quotes,
/// headings, spoilers and links in Discord's markdown and the Adaptive Cards
/// subset are backslash-escaped (so is a leading `-` or `+`, a list marker), `@`
/// is followed by a zero-width space so no mention forms, and `<`/`>` cannot
/// open a tag, a mention (`<@id>`) or an autolink.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '[' | ']' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200b}"),
            c => out.push(c),
        }
    }
    out
}

/// [`plain`], then [`markdown`]: the cut is made before escaping, so an escape is
/// never split.
pub fn markdown_text(s: &str, max: usize) -> String {
    markdown(&plain(s, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(topic: &str, payload: Value) -> Event {
        Event::new(
            "e".into(),
            topic.into(),
            "2026-04-24T10:00:00+00:00".into(),
            "t".into(),
            payload,
        )
    }

    #[test]
    fn decky_comes_from_the_payload_or_the_topic() {
        assert_eq!(
            decky(&event("decky.web-07.state", json!({}))),
            Some("web-07")
        );
        assert_eq!(decky(&event("x", json!({"decky": "d1"}))), Some("d1"));
        assert_eq!(decky(&event("decky.state", json!({}))), None);
        assert_eq!(
            attacker_ip(&event("x", json!({"attacker_ip": "not an ip"}))),
            None
        );
    }

    #[test]
    fn plain_cuts_and_flattens() {
        assert_eq!(plain("a\nb\tc", 10), "a b c");
        assert_eq!(plain("abcdef", 4), "abc…");
        assert_eq!(plain("abcd", 4), "abcd");
    }

    #[test]
    fn markdown_is_made_literal() {
        assert_eq!(
            markdown("**@everyone** [x](y)"),
            "\\*\\*@\u{200b}everyone\\*\\* \\[x\\]\\(y\\)"
        );
        assert_eq!(markdown("<@123>"), "\\<@\u{200b}123\\>");
    }
}
