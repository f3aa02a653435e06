//! How a receiver's answer is judged, per protocol. A plain webhook succeeds on any
//! 2xx; Splunk HEC, Elasticsearch `_bulk`, PagerDuty and Discord say more in the
//! body (a code, per-item results, a rate-limit wait), read here so the client
//! stays generic: it sends, then asks [`Protocol::judge`].

use std::time::Duration;

use awc::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::Value;

use super::retry::{self, StatusClass, RETRY_AFTER_CAP};
use crate::{config::Secret, db::truncate_chars, domain::webhook_url::WebhookUrl, shape::Shape};

const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET_AFTER: HeaderName = HeaderName::from_static("x-ratelimit-reset-after");
const X_RATELIMIT_GLOBAL: HeaderName = HeaderName::from_static("x-ratelimit-global");
const X_RATELIMIT_SCOPE: HeaderName = HeaderName::from_static("x-ratelimit-scope");

/// Characters of a receiver's own error text kept in an error.
const MAX_DETAIL_CHARS: usize = 300;

/// The protocol of a subscription's receiver.
#[derive(Clone, Debug, Default)]
pub enum Protocol {
    /// A webhook: 2xx is success, 429 and 5xx are retried.
    #[default]
    Http,
    /// Splunk HEC: success only with `"code": 0`; code 9 and 503 mean busy.
    /// With indexer acknowledgement, every request names its channel.
    SplunkHec { channel: Option<HeaderValue> },
    /// `_bulk`: a 200 may hold refused items, judged one by one.
    ElasticBulk,
    /// Events API v2: the routing key goes into the body on the wire only.
    PagerDuty { routing_key: Option<Secret> },
    /// Discord: a 429's wait is in the body (`retry_after`, seconds), and every
    /// answer says when the webhook's bucket is empty (`X-RateLimit-*`).
    Discord,
}

/// What one answer means.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Splunk HEC with indexer acknowledgement took the events: they count once
    /// `/services/collector/ack` says `ack_id` is indexed.
    Received {
        ack_id: u64,
    },
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    Fail {
        error: String,
    },
    /// Some items of a multi-item body were refused: `retry` are worth sending
    /// again, `failed` are not; indices are into the items sent. The others are in.
    Items {
        retry: Vec<(usize, String)>,
        failed: Vec<(usize, String)>,
    },
}

impl Protocol {
    /// The protocol of `shape`; `channel` is the subscription's uuid (Splunk's
    /// indexer-acknowledgement channel), `routing_key` PagerDuty's.
    pub fn for_shape(shape: &Shape, channel: &str, routing_key: Option<Secret>) -> Self {
        match shape {
            Shape::SplunkHec(settings) => Self::SplunkHec {
                channel: settings
                    .indexer_ack
                    .then(|| HeaderValue::from_str(channel).ok())
                    .flatten(),
            },
            Shape::ElasticBulk(_) => Self::ElasticBulk,
            Shape::PagerDuty(_) => Self::PagerDuty { routing_key },
            Shape::Discord => Self::Discord,
            _ => Self::Http,
        }
    }

    /// Whether the answer's body must be read to judge it.
    pub fn reads_body(&self) -> bool {
        !matches!(self, Self::Http)
    }

    /// Whether the receiver paces its callers (see `pacing`): its answers say how long
    /// to wait before the next request.
    pub fn paced(&self) -> bool {
        matches!(self, Self::Discord)
    }

    /// How long the receiver asks to wait before the next request, whatever this
    /// answer's status: Discord's bucket is empty (`X-RateLimit-Remaining: 0`) until
    /// `X-RateLimit-Reset-After` (seconds, fractional). Capped as `Retry-After` is.
    pub fn pause_after(&self, headers: &HeaderMap) -> Option<Duration> {
        if !self.paced() {
            return None;
        }
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let remaining = text(&X_RATELIMIT_REMAINING)?.trim().parse::<f64>().ok()?;
        if remaining > 0.0 {
            return None;
        }
        seconds(text(&X_RATELIMIT_RESET_AFTER)?.trim().parse().ok()?)
    }

    /// The name every URL of the receiver's host shares in the pacing table, for a
    /// limit that is not one URL's: Discord's global rate limit counts every webhook
    /// called from this address. Per host, so a receiver elsewhere that answers as
    /// Discord does can only hold its own requests.
    pub fn pacing_scope(&self, url: &WebhookUrl) -> Option<String> {
        match self {
            Self::Discord => Some(format!("global limit of {}:{}", url.host(), url.port())),
            _ => None,
        }
    }

    /// Whether this answer is a rate limit on every URL of the receiver, not only the
    /// one asked: Discord's 429 with `X-RateLimit-Global: true`, `X-RateLimit-Scope:
    /// global`, or `"global": true` in its body.
    pub fn limits_every_url(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
        if !matches!(self, Self::Discord) || status != 429 {
            return false;
        }
        let says = |name: &HeaderName, value: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
        };
        says(&X_RATELIMIT_GLOBAL, "true")
            || says(&X_RATELIMIT_SCOPE, "global")
            || json(body).and_then(|v| v.get("global")?.as_bool()) == Some(true)
    }

    /// The body as it goes on the wire: PagerDuty's gets its routing key as the
    /// first member (it is never stored, so dead letters never hold it).
    pub fn wire_body(&self, body: &Bytes) -> Bytes {
        let Self::PagerDuty {
            routing_key: Some(key),
        } = self
        else {
            return body.clone();
        };
        let Some(rest) = body.strip_prefix(b"{") else {
            return body.clone();
        };
        let key = serde_json::to_string(key.expose()).unwrap_or_default();
        let mut out = Vec::with_capacity(body.len() + key.len() + 18);
        out.extend_from_slice(b"{\"routing_key\":");
        out.extend_from_slice(key.as_bytes());
        if !rest.starts_with(b"}") {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        Bytes::from(out)
    }

    /// Judge an answer: its status, its `Retry-After` (already parsed, on 429 and
    /// 503), its body (read only when [`Self::reads_body`]) and how many items
    /// the request held.
    pub fn judge(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
        items: usize,
    ) -> Verdict {
        match self {
            Self::Http => by_status(status, retry_after, None),
            Self::SplunkHec { channel } => splunk(status, retry_after, body, channel.is_some()),
            Self::ElasticBulk => elastic(status, retry_after, body, items),
            Self::PagerDuty { .. } => by_status(status, retry_after, detail(body)),
            Self::Discord => discord(status, retry_after, body),
        }
    }
}

/// The webhook contract, with the receiver's own words when it gave some.
fn by_status(status: u16, retry_after: Option<Duration>, detail: Option<String>) -> Verdict {
    let with = |text: String| match &detail {
        Some(d) => format!("{text}: {d}"),
        None => text,
    };
    match retry::classify(status) {
        StatusClass::Success => Verdict::Delivered,
        StatusClass::Retryable => Verdict::Retry {
            error: with(format!("HTTP {status}")),
            retry_after,
        },
        StatusClass::Final => Verdict::Fail {
            error: with(format!("non-retryable {status}")),
        },
    }
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

fn short(s: &str) -> String {
    truncate_chars(
        &crate::shape::fields::plain(s, MAX_DETAIL_CHARS),
        MAX_DETAIL_CHARS,
    )
}

/// A JSON error body's message: `message`, `text`, `error.reason` or `error`
/// (with `errors` when PagerDuty lists them).
fn detail(body: &[u8]) -> Option<String> {
    let v = json(body)?;
    let text = ["message", "text"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        .or_else(|| {
            v.pointer("/error/reason")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| v.get("error").and_then(Value::as_str).map(str::to_owned))?;
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|e| !e.is_empty());
    Some(short(&match errors {
        Some(e) => format!("{text} ({e})"),
        None => text,
    }))
}

/// HEC answers `{"text": …, "code": n}`; only code 0 is success. Code 9 (server
/// busy) and 503 are retried, as are 429 and other 5xx. With indexer acknowledgement
/// (`acknowledged`), a success with an `ackId` is only received; without one (off on
/// HEC's token) it is the last word.
fn splunk(status: u16, retry_after: Option<Duration>, body: &[u8], acknowledged: bool) -> Verdict {
    let answer = json(body);
    let ack_id = || {
        let id = answer.as_ref()?.get("ackId")?.as_u64()?;
        acknowledged.then_some(Verdict::Received { ack_id: id })
    };
    let code = answer
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_i64);
    let text = answer
        .as_ref()
        .and_then(|v| v.get("text"))
        .and_then(Value::as_str)
        .map(short)
        .unwrap_or_default();
    match code {
        Some(0) if (200..300).contains(&status) => ack_id().unwrap_or(Verdict::Delivered),
        Some(9) => Verdict::Retry {
            error: format!("splunk code 9 (HTTP {status}): {text}"),
            retry_after,
        },
        Some(code) => match retry::classify(status) {
            StatusClass::Retryable => Verdict::Retry {
                error: format!("splunk code {code} (HTTP {status}): {text}"),
                retry_after,
            },
            _ => Verdict::Fail {
                error: format!("splunk code {code} (HTTP {status}): {text}"),
            },
        },
        None => match retry::classify(status) {
            StatusClass::Success => Verdict::Fail {
                error: format!("HTTP {status} without a Splunk HEC answer (no \"code\")"),
            },
            _ => by_status(status, retry_after, None),
        },
    }
}

/// A `_bulk` answer: a 200 with `"errors": true` is read item by item; an item
/// answered 429 or 5xx is retried, a 409 on `create` is an item indexed before
/// (success), any other refusal fails with the item's own error.
fn elastic(status: u16, retry_after: Option<Duration>, body: &[u8], sent: usize) -> Verdict {
    if !(200..300).contains(&status) {
        return by_status(status, retry_after, detail(body));
    }
    let Some(answer) = json(body) else {
        return Verdict::Fail {
            error: format!("HTTP {status} without a _bulk answer"),
        };
    };
    if answer.get("errors").and_then(Value::as_bool) == Some(false) {
        return Verdict::Delivered;
    }
    let Some(items) = answer.get("items").and_then(Value::as_array) else {
        return Verdict::Fail {
            error: "_bulk answer has errors but no items".into(),
        };
    };
    if items.len() != sent {
        return Verdict::Fail {
            error: format!("_bulk answer lists {} items for {sent} sent", items.len()),
        };
    }
    let (mut retry, mut failed) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        let result = item.as_object().and_then(|o| o.values().next());
        let item_status = result
            .and_then(|r| r.get("status"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if (200..300).contains(&item_status) || item_status == 409 {
            continue;
        }
        let kind = result
            .and_then(|r| r.pointer("/error/type"))
            .and_then(Value::as_str)
            .unwrap_or("error");
        let reason = result
            .and_then(|r| r.pointer("/error/reason"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let error = short(&format!("item {item_status} {kind}: {reason}"));
        if item_status == 429 || item_status >= 500 {
            retry.push((i, error));
        } else {
            failed.push((i, error));
        }
    }
    if retry.is_empty() && failed.is_empty() {
        Verdict::Delivered
    } else {
        Verdict::Items { retry, failed }
    }
}

/// Discord's 429 says how long to wait in its body (`retry_after`, seconds).
fn discord(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    if status == 429 {
        let wait = json(body)
            .and_then(|v| v.get("retry_after").and_then(Value::as_f64))
            .and_then(seconds)
            .or(retry_after);
        return Verdict::Retry {
            error: "HTTP 429: rate limited".into(),
            retry_after: wait,
        };
    }
    by_status(status, retry_after, detail(body))
}

/// HEC's acknowledgement query for one `ackId`.
pub fn splunk_ack_query(ack_id: u64) -> String {
    format!("{{\"acks\":[{ack_id}]}}")
}

/// Whether HEC's answer to [`splunk_ack_query`] says `ack_id`'s events are indexed
/// (`{"acks": {"<id>": true}}`); `None` when the answer is not that.
pub fn splunk_acked(body: &[u8], ack_id: u64) -> Option<bool> {
    json(body)?.get("acks")?.get(ack_id.to_string())?.as_bool()
}

/// A wait a receiver gave in seconds, capped as `Retry-After` is; `None` when it is
/// not a number of seconds.
fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0)
        .then(|| Duration::from_secs_f64(s.min(RETRY_AFTER_CAP.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn splunk_succeeds_only_on_code_zero() {
        let hec = Protocol::SplunkHec { channel: None };
        let ok = body(json!({"text": "Success", "code": 0}));
        assert_eq!(hec.judge(200, None, &ok, 1), Verdict::Delivered);
        let busy = body(json!({"text": "Server is busy", "code": 9}));
        assert!(matches!(
            hec.judge(503, None, &busy, 1),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            hec.judge(200, None, &busy, 1),
            Verdict::Retry { .. }
        ));
        let bad =
            body(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 0}));
        assert_eq!(
            hec.judge(400, None, &bad, 1),
            Verdict::Fail {
                error: "splunk code 6 (HTTP 400): Invalid data format".into()
            }
        );
        assert!(matches!(
            hec.judge(200, None, b"<html>", 1),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn elastic_items_are_judged_one_by_one() {
        let answer = body(json!({"took": 3, "errors": true, "items": [
            {"create": {"_id": "a", "status": 201}},
            {"create": {"_id": "b", "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"_id": "c", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"create": {"_id": "d", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}},
        ]}));
        assert_eq!(
            Protocol::ElasticBulk.judge(200, None, &answer, 4),
            Verdict::Items {
                retry: vec![(
                    2,
                    "item 429 es_rejected_execution_exception: queue full".into()
                )],
                failed: vec![(
                    3,
                    "item 400 mapper_parsing_exception: failed to parse".into()
                )],
            }
        );
        let fine = body(json!({"errors": false, "items": []}));
        assert_eq!(
            Protocol::ElasticBulk.judge(200, None, &fine, 4),
            Verdict::Delivered
        );
        assert!(matches!(
            Protocol::ElasticBulk.judge(200, None, &answer, 3),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn discord_waits_as_its_429_says() {
        let answer = body(
            json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": false}),
        );
        assert_eq!(
            Protocol::Discord.judge(429, None, &answer, 1),
            Verdict::Retry {
                error: "HTTP 429: rate limited".into(),
                retry_after: Some(Duration::from_millis(250))
            }
        );
    }

    #[test]
    fn discord_says_when_its_bucket_is_empty() {
        let headers = |remaining: &str, reset_after: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                X_RATELIMIT_REMAINING,
                HeaderValue::from_str(remaining).unwrap(),
            );
            h.insert(
                X_RATELIMIT_RESET_AFTER,
                HeaderValue::from_str(reset_after).unwrap(),
            );
            h
        };
        let pause = |h: &HeaderMap| Protocol::Discord.pause_after(h);
        assert_eq!(
            pause(&headers("0", "1.5")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            pause(&headers("0", " 0.25 ")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(pause(&headers("3", "1.5")), None, "tokens left");
        assert_eq!(pause(&headers("0", "86400")), Some(RETRY_AFTER_CAP));
        for bad in ["-1", "NaN", "inf", "soon", ""] {
            assert_eq!(pause(&headers("0", bad)), None, "{bad:?}");
        }
        assert_eq!(pause(&HeaderMap::new()), None);
        // Only Discord's answers are read this way.
        assert_eq!(Protocol::Http.pause_after(&headers("0", "1.5")), None);
    }

    #[test]
    fn discord_says_when_its_limit_is_every_webhooks() {
        let with = |name: HeaderName, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(value).unwrap());
            h
        };
        let none = HeaderMap::new();
        let global = body(
            json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": true}),
        );
        let local = body(
            json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false}),
        );
        let discord = Protocol::Discord;
        assert!(discord.limits_every_url(429, &none, &global));
        assert!(discord.limits_every_url(429, &with(X_RATELIMIT_GLOBAL, "true"), &local));
        assert!(discord.limits_every_url(429, &with(X_RATELIMIT_SCOPE, "global"), b""));
        assert!(!discord.limits_every_url(429, &with(X_RATELIMIT_SCOPE, "user"), &local));
        assert!(!discord.limits_every_url(429, &with(X_RATELIMIT_GLOBAL, "false"), &local));
        assert!(!discord.limits_every_url(429, &none, b"not json"));
        assert!(!discord.limits_every_url(200, &none, &global), "only a 429");
        assert!(!Protocol::Http.limits_every_url(429, &none, &global));
        let scope = |url: &str| discord.pacing_scope(&WebhookUrl::parse(url).unwrap());
        assert_eq!(
            scope("https://discord.com/api/webhooks/1/a"),
            scope("https://discord.com/api/webhooks/2/b")
        );
        assert_ne!(
            scope("https://discord.com/api/webhooks/1/a"),
            scope("https://elsewhere.example/api/webhooks/1/a"),
            "another host's answers hold only that host"
        );
        assert!(!scope("https://discord.com/api/webhooks/1/a")
            .unwrap()
            .contains("webhooks"));
        assert_eq!(
            Protocol::Http.pacing_scope(&WebhookUrl::parse("https://a.example/").unwrap()),
            None
        );
    }

    #[test]
    fn splunk_acknowledgements_are_read_only_where_asked_for() {
        let answer = br#"{"text":"Success","code":0,"ackId":42}"#;
        let with_ack = Protocol::SplunkHec {
            channel: Some(HeaderValue::from_static(
                "0f6c1b1e-7c3f-4d3e-9a0c-1c2d3e4f5a6b",
            )),
        };
        let judge = |protocol: &Protocol, body: &[u8]| protocol.judge(200, None, body, 1);
        assert_eq!(judge(&with_ack, answer), Verdict::Received { ack_id: 42 });
        let without_id = br#"{"text":"Success","code":0}"#;
        assert_eq!(judge(&with_ack, without_id), Verdict::Delivered);
        let hec = Protocol::SplunkHec { channel: None };
        assert_eq!(judge(&hec, answer), Verdict::Delivered);
        assert_eq!(judge(&Protocol::Http, answer), Verdict::Delivered);

        let query: Value = serde_json::from_str(&splunk_ack_query(42)).unwrap();
        assert_eq!(query, json!({"acks": [42]}));
        assert_eq!(splunk_acked(br#"{"acks":{"42":true}}"#, 42), Some(true));
        assert_eq!(
            splunk_acked(br#"{"acks":{"42":false,"7":true}}"#, 42),
            Some(false)
        );
        assert_eq!(splunk_acked(br#"{"acks":{"7":true}}"#, 42), None);
        assert_eq!(
            splunk_acked(br#"{"text":"ACK is disabled","code":14}"#, 42),
            None
        );
        assert_eq!(splunk_acked(b"not json", 42), None);
    }

    #[test]
    fn the_routing_key_is_added_on_the_wire_only() {
        let pd = Protocol::PagerDuty {
            routing_key: Some(Secret::new("R0ut1ng\"key")),
        };
        let body = Bytes::from_static(b"{\"dedup_key\":\"k\"}");
        let wire = pd.wire_body(&body);
        let v: Value = serde_json::from_slice(&wire).unwrap();
        assert_eq!(v["routing_key"], "R0ut1ng\"key");
        assert_eq!(v["dedup_key"], "k");
        assert_eq!(Protocol::Http.wire_body(&body), body);
    }
}
