//! Payload shapes: what body a subscription's receiver gets for an event.
//!
//! `raw` sends the envelope itself; the others render a JSON document from it
//! (docs/shapes.md describes each one exactly). Every rendered body is compact JSON
//! with keys sorted at every depth, like the envelope.

pub mod destination;
pub mod discord;
mod elastic;
mod error;
pub mod fields;
mod limits;
mod pagerduty;
pub mod sandbox;
mod sentinel;
mod slack;
mod splunk;
mod teams;
mod template;
mod thehive;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::domain::Event;

pub use destination::{Destination, DestinationError, Severity};
pub use error::ShapeError;
pub use limits::{MAX_OUTPUT_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL};
pub use sentinel::MAX_REQUEST_BYTES as SENTINEL_MAX_REQUEST_BYTES;

/// The shape names a subscription may store, `raw` first (the default).
pub const NAMES: [&str; 10] = [
    "raw",
    "slack",
    "thehive",
    "template",
    "splunk_hec",
    "elastic_bulk",
    "sentinel",
    "pagerduty",
    "teams",
    "discord",
];

/// How a subscription's events are shaped before they are signed and sent.
#[derive(Clone, Debug, Default)]
pub enum Shape {
    /// The envelope (`domain::event`), byte for byte.
    #[default]
    Raw,
    /// A Slack incoming-webhook message, `{"text": …}`.
    Slack,
    /// A TheHive 5 alert.
    TheHive,
    /// The operator's own minijinja template (its source), rendered by
    /// [`sandbox::Sandbox`].
    Template(Arc<str>),
    /// A Splunk HTTP Event Collector event.
    SplunkHec(Arc<Destination>),
    /// An Elasticsearch/OpenSearch `_bulk` create action and its ECS document.
    ElasticBulk(Arc<Destination>),
    /// Records for the Azure Monitor Logs Ingestion API (Microsoft Sentinel).
    Sentinel(Arc<Destination>),
    /// A PagerDuty Events API v2 trigger (its routing key added on the wire).
    PagerDuty(Arc<Destination>),
    /// A Microsoft Teams Workflows message with an Adaptive Card.
    Teams,
    /// A Discord webhook message with one embed.
    Discord,
}

/// How a shape's bodies are posted several to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// `{"events":[…]}`.
    EventsObject,
    /// Bodies one after another, nothing between (Splunk HEC, NDJSON `_bulk`).
    Concatenated,
    /// One JSON array of every body's records (each body is an array already).
    JoinedArrays,
    /// The receiver takes one object per request.
    Never,
}

impl Shape {
    /// The shape stored on a row (`shape`, `template` columns). A template is only
    /// checked for size here: it compiles in the sandbox, which reports a broken one
    /// with each event.
    pub fn from_row(
        shape: &str,
        template: Option<&str>,
        destination: &Destination,
    ) -> Result<Self, ShapeError> {
        destination
            .check(shape)
            .map_err(|e| ShapeError::Destination(e.to_string()))?;
        let settings = || Arc::new(destination.clone());
        match shape {
            "raw" | "" => Ok(Self::Raw),
            "slack" => Ok(Self::Slack),
            "thehive" => Ok(Self::TheHive),
            "splunk_hec" => Ok(Self::SplunkHec(settings())),
            "elastic_bulk" => Ok(Self::ElasticBulk(settings())),
            "sentinel" => Ok(Self::Sentinel(settings())),
            "pagerduty" => Ok(Self::PagerDuty(settings())),
            "teams" => Ok(Self::Teams),
            "discord" => Ok(Self::Discord),
            "template" => {
                let source = template.ok_or(ShapeError::MissingTemplate)?;
                if source.len() > MAX_TEMPLATE_BYTES {
                    return Err(ShapeError::TemplateTooLarge { size: source.len() });
                }
                Ok(Self::Template(source.into()))
            }
            other => Err(ShapeError::Unknown(other.to_owned())),
        }
    }

    /// The shape of a stored row's columns (`shape`, `template`, `destination`).
    pub fn from_stored(
        shape: &str,
        template: Option<&str>,
        destination: Option<&Value>,
    ) -> Result<Self, ShapeError> {
        let destination = Destination::from_json(destination)
            .map_err(|e| ShapeError::Destination(e.to_string()))?;
        Self::from_row(shape, template, &destination)
    }

    /// The checks the API runs before it stores a shape that need no sandbox: the
    /// name is known and a template is given and not too large. A template's
    /// compile and trial render are [`sandbox::Sandbox::check`].
    pub fn validate(
        shape: &str,
        template: Option<&str>,
        destination: &Destination,
    ) -> Result<(), ShapeError> {
        Self::from_row(shape, template, destination).map(drop)
    }

    /// The stored name of this shape.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Slack => "slack",
            Self::TheHive => "thehive",
            Self::Template(_) => "template",
            Self::SplunkHec(_) => "splunk_hec",
            Self::ElasticBulk(_) => "elastic_bulk",
            Self::Sentinel(_) => "sentinel",
            Self::PagerDuty(_) => "pagerduty",
            Self::Teams => "teams",
            Self::Discord => "discord",
        }
    }

    /// How several bodies of this shape go in one request.
    pub fn batching(&self) -> Batching {
        match self {
            Self::Raw | Self::Template(_) => Batching::EventsObject,
            Self::SplunkHec(_) | Self::ElasticBulk(_) => Batching::Concatenated,
            Self::Sentinel(_) => Batching::JoinedArrays,
            Self::Slack | Self::TheHive | Self::PagerDuty(_) | Self::Teams | Self::Discord => {
                Batching::Never
            }
        }
    }

    /// The largest request body the receiver takes, when it has a documented limit.
    pub fn max_request_bytes(&self) -> Option<usize> {
        matches!(self, Self::Sentinel(_)).then_some(sentinel::MAX_REQUEST_BYTES)
    }

    /// Where requests go, from the subscription's stored URL: `sentinel` stores
    /// the ingestion endpoint and posts to its rule's stream.
    pub fn request_url<'a>(&self, url: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Self::Sentinel(d) => std::borrow::Cow::Owned(sentinel::url(url, d)),
            _ => std::borrow::Cow::Borrowed(url),
        }
    }

    /// The `Content-Type` of this shape's requests.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::ElasticBulk(_) => "application/x-ndjson",
            _ => "application/json",
        }
    }

    pub fn is_raw(&self) -> bool {
        matches!(self, Self::Raw)
    }

    /// The outgoing body for one event, for every shape but `template`, whose
    /// bodies come from [`sandbox::Sandbox::render`].
    pub fn render(&self, event: &Event) -> Result<Bytes, ShapeError> {
        match self {
            Self::Raw => Ok(event.body.clone()),
            Self::Slack => Ok(sorted(&slack::message(event))),
            Self::TheHive => Ok(sorted(&thehive::alert(event))),
            Self::SplunkHec(settings) => Ok(sorted(&splunk::event(event, settings))),
            Self::ElasticBulk(settings) => Ok(Bytes::from(elastic::lines(event, settings))),
            Self::Sentinel(_) => Ok(sorted(&Value::Array(vec![sentinel::record(event)]))),
            Self::PagerDuty(settings) => Ok(sorted(&pagerduty::trigger(event, settings))),
            Self::Teams => Ok(sorted(&teams::message(event))),
            Self::Discord => Ok(sorted(&discord::message(event))),
            Self::Template(_) => Err(ShapeError::Unavailable(
                "a template renders only in the sandbox".into(),
            )),
        }
    }
}

/// Several bodies of `batching` as one request body. Bodies are this crate's
/// own renders (compact JSON; JSON arrays for [`Batching::JoinedArrays`]).
pub fn join(batching: Batching, bodies: &[&[u8]]) -> Bytes {
    match batching {
        Batching::EventsObject | Batching::Never => crate::domain::Event::batch(bodies).body,
        Batching::Concatenated => Bytes::from(bodies.concat()),
        Batching::JoinedArrays => {
            let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len()).sum::<usize>() + 2);
            out.push(b'[');
            let mut first = true;
            for body in bodies {
                let inner = body
                    .strip_prefix(b"[")
                    .and_then(|b| b.strip_suffix(b"]"))
                    .unwrap_or(body);
                if inner.is_empty() {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(inner);
            }
            out.push(b']');
            Bytes::from(out)
        }
    }
}

fn sorted(value: &Value) -> Bytes {
    Bytes::from(crate::domain::event::to_sorted_json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Destination {
        Destination::default()
    }

    #[test]
    fn joined_bodies_follow_each_receiver() {
        let two: [&[u8]; 2] = [b"{\"a\":1}", b"{\"b\":2}"];
        assert_eq!(
            &join(Batching::Concatenated, &two)[..],
            b"{\"a\":1}{\"b\":2}"
        );
        let arrays: [&[u8]; 2] = [b"[{\"a\":1}]", b"[{\"b\":2}]"];
        assert_eq!(
            &join(Batching::JoinedArrays, &arrays)[..],
            b"[{\"a\":1},{\"b\":2}]"
        );
        assert!(join(Batching::EventsObject, &two).starts_with(b"{\"events\":["));
    }

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert!(Shape::from_row("raw", None, &none()).unwrap().is_raw());
        assert!(Shape::from_row("", None, &none()).unwrap().is_raw());
        assert!(matches!(
            Shape::from_row("slack", None, &none()),
            Ok(Shape::Slack)
        ));
        assert!(matches!(
            Shape::from_row("thehive", None, &none()),
            Ok(Shape::TheHive)
        ));
        assert_eq!(
            Shape::from_row("xml", None, &none()).unwrap_err().to_string(),
            "unknown shape \"xml\": use raw, slack, thehive, template, splunk_hec, elastic_bulk, sentinel, pagerduty, teams or discord"
        );
        assert_eq!(
            Shape::from_row("template", None, &none()).unwrap_err(),
            ShapeError::MissingTemplate
        );
        for name in NAMES {
            let template = (name == "template").then_some("{{ payload }}");
            let mut settings = none();
            if name == "sentinel" {
                settings.dcr_immutable_id = Some(format!("dcr-{}", "0".repeat(32)));
                settings.stream = Some("Custom-DecnetEvents_CL".into());
            }
            let shape = Shape::from_row(name, template, &settings).unwrap();
            assert_eq!(shape.name(), name);
        }
        let big = " ".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(matches!(
            Shape::validate("template", Some(&big), &none()),
            Err(ShapeError::TemplateTooLarge { .. })
        ));
    }
}
