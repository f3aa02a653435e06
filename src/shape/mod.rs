//! Payload shapes (SPEC §8): what body a subscription's receiver gets for an event.
//!
//! `raw` sends the envelope itself; the others render a JSON document from it.

use bytes::Bytes;

use crate::domain::Event;

/// How a subscription's events are shaped before they are signed and sent.
#[derive(Clone, Debug, Default)]
pub enum Shape {
    /// The envelope of SPEC §6, byte for byte.
    #[default]
    Raw,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("unknown shape {0:?}")]
    Unknown(String),
}

impl Shape {
    /// The shape stored on a row (`shape`, `template` columns).
    pub fn from_row(shape: &str, template: Option<&str>) -> Result<Self, ShapeError> {
        let _ = template;
        match shape {
            "raw" | "" => Ok(Self::Raw),
            other => Err(ShapeError::Unknown(other.to_owned())),
        }
    }

    pub fn is_raw(&self) -> bool {
        matches!(self, Self::Raw)
    }

    /// The outgoing body for one event.
    pub fn render(&self, event: &Event) -> Result<Bytes, ShapeError> {
        match self {
            Self::Raw => Ok(event.body.clone()),
        }
    }
}
