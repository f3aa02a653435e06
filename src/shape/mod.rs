//! Payload shapes: what body a subscription's receiver gets for an event.
//!
//! `raw` sends the envelope itself; the others render a JSON document from it
//! (docs/shapes.md describes each one exactly). Every rendered body is compact JSON
//! with keys sorted at every depth, like the envelope.

mod error;
mod limits;
pub mod sandbox;
mod slack;
mod template;
mod thehive;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::domain::Event;

pub use error::ShapeError;
pub use limits::{MAX_OUTPUT_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL};

/// The shape names a subscription may store, `raw` first (the default).
pub const NAMES: [&str; 4] = ["raw", "slack", "thehive", "template"];

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
}

impl Shape {
    /// The shape stored on a row (`shape`, `template` columns). A template is only
    /// checked for size here: it compiles in the sandbox, which reports a broken one
    /// with each event.
    pub fn from_row(shape: &str, template: Option<&str>) -> Result<Self, ShapeError> {
        match shape {
            "raw" | "" => Ok(Self::Raw),
            "slack" => Ok(Self::Slack),
            "thehive" => Ok(Self::TheHive),
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

    /// The checks the API runs before it stores a shape that need no sandbox: the
    /// name is known and a template is given and not too large. A template's
    /// compile and trial render are [`sandbox::Sandbox::check`].
    pub fn validate(shape: &str, template: Option<&str>) -> Result<(), ShapeError> {
        Self::from_row(shape, template).map(drop)
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
            Self::Template(_) => Err(ShapeError::Unavailable(
                "a template renders only in the sandbox".into(),
            )),
        }
    }
}

fn sorted(value: &Value) -> Bytes {
    Bytes::from(crate::domain::event::to_sorted_json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert!(Shape::from_row("raw", None).unwrap().is_raw());
        assert!(Shape::from_row("", None).unwrap().is_raw());
        assert!(matches!(Shape::from_row("slack", None), Ok(Shape::Slack)));
        assert!(matches!(
            Shape::from_row("thehive", None),
            Ok(Shape::TheHive)
        ));
        assert_eq!(
            Shape::from_row("xml", None).unwrap_err().to_string(),
            "unknown shape \"xml\": use raw, slack, thehive or template"
        );
        assert_eq!(
            Shape::from_row("template", None).unwrap_err(),
            ShapeError::MissingTemplate
        );
        for name in NAMES {
            assert!(Shape::validate(name, Some("{{ payload }}")).is_ok());
        }
        let big = " ".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(matches!(
            Shape::validate("template", Some(&big)),
            Err(ShapeError::TemplateTooLarge { .. })
        ));
    }
}
