//! Payload shapes: what body a subscription's receiver gets for an event.
//!
//! `raw` sends the envelope itself; the others render a JSON document from it
//! (docs/shapes.md describes each one exactly). Every rendered body is compact JSON
//! with keys sorted at every depth, like the envelope.

mod slack;
mod template;
mod thehive;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::domain::Event;

pub use template::{MAX_OUTPUT_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL};

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
    /// The operator's own minijinja template, compiled once.
    Template(Arc<template::Compiled>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("unknown shape {0:?}: use raw, slack, thehive or template")]
    Unknown(String),
    #[error("shape \"template\" needs a template")]
    MissingTemplate,
    #[error("template is {size} bytes; at most {max} are allowed", max = MAX_TEMPLATE_BYTES)]
    TemplateTooLarge { size: usize },
    #[error("template syntax error{}: {message}", on_line(*.line))]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    #[error("template render error{}: {message}", on_line(*.line))]
    Render {
        line: Option<usize>,
        message: String,
    },
    #[error("template ran out of fuel after {fuel} steps; it loops too much", fuel = TEMPLATE_FUEL)]
    OutOfFuel,
    #[error("template output is larger than {max} bytes", max = MAX_OUTPUT_BYTES)]
    OutputTooLarge,
    #[error("template output is not JSON: {0}")]
    NotJson(String),
}

fn on_line(line: Option<usize>) -> String {
    line.map(|l| format!(" on line {l}")).unwrap_or_default()
}

impl ShapeError {
    /// The template line the error points at, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::Render { line, .. } => *line,
            _ => None,
        }
    }
}

impl Shape {
    /// The shape stored on a row (`shape`, `template` columns). A template is
    /// compiled here, so a broken one is an error now rather than at each event.
    pub fn from_row(shape: &str, template: Option<&str>) -> Result<Self, ShapeError> {
        match shape {
            "raw" | "" => Ok(Self::Raw),
            "slack" => Ok(Self::Slack),
            "thehive" => Ok(Self::TheHive),
            "template" => {
                let source = template.ok_or(ShapeError::MissingTemplate)?;
                Ok(Self::Template(Arc::new(template::Compiled::new(source)?)))
            }
            other => Err(ShapeError::Unknown(other.to_owned())),
        }
    }

    /// The check the API runs before it stores a shape: the name is known and a
    /// template compiles (the error names the line).
    pub fn validate(shape: &str, template: Option<&str>) -> Result<(), ShapeError> {
        Self::from_row(shape, template).map(drop)
    }

    pub fn is_raw(&self) -> bool {
        matches!(self, Self::Raw)
    }

    /// The outgoing body for one event.
    pub fn render(&self, event: &Event) -> Result<Bytes, ShapeError> {
        match self {
            Self::Raw => Ok(event.body.clone()),
            Self::Slack => Ok(sorted(&slack::message(event))),
            Self::TheHive => Ok(sorted(&thehive::alert(event))),
            Self::Template(compiled) => compiled.render(event),
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
    }
}
