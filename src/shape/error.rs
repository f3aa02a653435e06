//! Why a shape could not be built or could not render an event.

use serde::{Deserialize, Serialize};

use super::limits::{MAX_OUTPUT_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL};

/// Errors cross the sandbox's pipe as JSON, hence the serde derives.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShapeError {
    #[error("unknown shape {0:?}: use raw, slack, thehive, template, splunk_hec, elastic_bulk, sentinel, pagerduty, teams or discord")]
    Unknown(String),
    /// The subscription's destination settings do not fit its shape.
    #[error("{0}")]
    Destination(String),
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
    /// The render ran past the wall-clock limit and was stopped.
    #[error("template took longer than {ms} ms to render and was stopped")]
    TimedOut { ms: u64 },
    /// The render needed more memory than the sandbox allows and was stopped.
    #[error("template needed more than {mib} MiB of memory and was stopped")]
    OutOfMemory { mib: u64 },
    /// The sandbox process died some other way while rendering.
    #[error("template crashed its renderer: {0}")]
    Crashed(String),
    /// Renders of a template that just hit a limit fail at once for a while, so
    /// it cannot keep a renderer busy event after event.
    #[error("template renders are paused for {secs} s after: {error}")]
    Paused { secs: u64, error: String },
    /// The sandbox could not run at all: not the template's fault.
    #[error("template renderer unavailable: {0}")]
    Unavailable(String),
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

    /// A limit of the sandbox stopped the template (rather than its own logic):
    /// such a template is refused on save.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::OutOfFuel
                | Self::OutputTooLarge
                | Self::TimedOut { .. }
                | Self::OutOfMemory { .. }
                | Self::Crashed(_)
        )
    }

    /// The template cost a renderer its process or its whole time budget.
    pub fn is_costly(&self) -> bool {
        matches!(
            self,
            Self::TimedOut { .. } | Self::OutOfMemory { .. } | Self::Crashed(_)
        )
    }
}
