//! The per-subscription settings of the destination shapes (the row's
//! `destination` column): which index, sourcetype, stream or minimum severity.
//! Secrets (PagerDuty's routing key) are not here: they are sealed in a column of
//! their own and never shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The index pattern of `elastic_bulk` when none is set.
pub const DEFAULT_ELASTIC_INDEX: &str = "decnet-%Y.%m.%d";
/// Longest index, sourcetype, host or stream accepted.
const MAX_NAME: usize = 100;

/// PagerDuty's severities, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// Destination settings; each shape takes only its own (docs/destinations.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// `splunk_hec`: the index (the token's default when absent). `elastic_bulk`:
    /// the index, with `%Y`, `%m`, `%d` taken from the event's time
    /// (`decnet-%Y.%m.%d` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100, example = "decnet-%Y.%m.%d")]
    pub index: Option<String>,
    /// `splunk_hec`: the sourcetype (`decnet:<topic>` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub sourcetype: Option<String>,
    /// `splunk_hec`: the host (the event's decoy, else `decnet`, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub host: Option<String>,
    /// `splunk_hec`: indexer acknowledgement is on for the token, so every request
    /// carries `X-Splunk-Request-Channel` (the subscription's uuid).
    #[serde(default, skip_serializing_if = "is_false")]
    pub indexer_ack: bool,
    /// `sentinel`: the data collection rule's immutable id (`dcr-` and 32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "dcr-00000000000000000000000000000000")]
    pub dcr_immutable_id: Option<String>,
    /// `sentinel`: the DCR's input stream, e.g. `Custom-DecnetEvents_CL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100, example = "Custom-DecnetEvents_CL")]
    pub stream: Option<String>,
    /// `pagerduty`: events are raised at least at this severity (`info` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A setting that is wrong: its name (`destination.<field>`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination.{field}: {problem}")]
pub struct DestinationError {
    pub field: &'static str,
    pub problem: String,
}

fn wrong(field: &'static str, problem: impl Into<String>) -> DestinationError {
    DestinationError {
        field,
        problem: problem.into(),
    }
}

impl Destination {
    /// The settings stored on a row; `None` (no column value) is all defaults.
    pub fn from_json(value: Option<&serde_json::Value>) -> Result<Self, DestinationError> {
        match value {
            None | Some(serde_json::Value::Null) => Ok(Self::default()),
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| wrong("settings", e.to_string()))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The settings as stored: `None` when there are none.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        (!self.is_empty()).then(|| serde_json::to_value(self).unwrap_or_default())
    }

    /// The settings `shape` takes, each well-formed; any other set is refused.
    pub fn check(&self, shape: &str) -> Result<(), DestinationError> {
        let allowed: &[&str] = match shape {
            "splunk_hec" => &["index", "sourcetype", "host", "indexer_ack"],
            "elastic_bulk" => &["index"],
            "sentinel" => &["dcr_immutable_id", "stream"],
            "pagerduty" => &["min_severity"],
            _ => &[],
        };
        let set = [
            ("index", self.index.is_some()),
            ("sourcetype", self.sourcetype.is_some()),
            ("host", self.host.is_some()),
            ("indexer_ack", self.indexer_ack),
            ("dcr_immutable_id", self.dcr_immutable_id.is_some()),
            ("stream", self.stream.is_some()),
            ("min_severity", self.min_severity.is_some()),
        ];
        if let Some((field, _)) = set.iter().find(|(f, on)| *on && !allowed.contains(f)) {
            return Err(wrong(field, format!("does not apply to shape {shape:?}")));
        }
        if let Some(index) = &self.index {
            match shape {
                "elastic_bulk" => elastic_index(index)?,
                _ => name("index", index)?,
            }
        }
        if let Some(s) = &self.sourcetype {
            name("sourcetype", s)?;
        }
        if let Some(h) = &self.host {
            name("host", h)?;
        }
        if shape == "sentinel" {
            let dcr = self
                .dcr_immutable_id
                .as_deref()
                .ok_or_else(|| wrong("dcr_immutable_id", "required with shape \"sentinel\""))?;
            let hex = dcr.strip_prefix("dcr-").unwrap_or_default();
            if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(wrong(
                    "dcr_immutable_id",
                    "must be \"dcr-\" and 32 hex digits",
                ));
            }
            let stream = self
                .stream
                .as_deref()
                .ok_or_else(|| wrong("stream", "required with shape \"sentinel\""))?;
            if stream.is_empty()
                || stream.len() > MAX_NAME
                || !stream
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(wrong(
                    "stream",
                    "must be 1–100 letters, digits, '_' or '-', e.g. Custom-DecnetEvents_CL",
                ));
            }
        }
        Ok(())
    }

    /// The `elastic_bulk` index for an event at `at`.
    pub fn elastic_index_at(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        let pattern = self.index.as_deref().unwrap_or(DEFAULT_ELASTIC_INDEX);
        let mut out = String::with_capacity(pattern.len() + 8);
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('Y') => out.push_str(&at.format("%Y").to_string()),
                Some('m') => out.push_str(&at.format("%m").to_string()),
                Some('d') => out.push_str(&at.format("%d").to_string()),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

/// A Splunk name: printable, no spaces or quotes, at most 100 characters.
fn name(field: &'static str, value: &str) -> Result<(), DestinationError> {
    if value.is_empty()
        || value.chars().count() > MAX_NAME
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '"')
    {
        return Err(wrong(
            field,
            "must be 1–100 characters without spaces, quotes or control characters",
        ));
    }
    Ok(())
}

/// Elasticsearch's index-name rules (lowercase, none of `\ / * ? " < > | , #`
/// or spaces, not starting with `-`, `_` or `+`), with `%Y`, `%m`, `%d` the only
/// `%` sequences.
fn elastic_index(pattern: &str) -> Result<(), DestinationError> {
    let problem = "must be a lowercase Elasticsearch index name (no spaces or \\ / * ? \" < > | , #, \
                   not starting with - _ +), 1–100 characters; %Y, %m, %d stand for the event's date";
    let bad_char = |c: char| {
        c.is_uppercase()
            || c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
            )
    };
    let mut chars = pattern.chars().peekable();
    let mut ok = !pattern.is_empty()
        && pattern.chars().count() <= MAX_NAME
        && !pattern.starts_with(['-', '_', '+'])
        && pattern != "."
        && pattern != "..";
    while let Some(c) = chars.next() {
        if c == '%' {
            ok &= matches!(chars.next(), Some('Y' | 'm' | 'd'));
        } else {
            ok &= !bad_char(c);
        }
    }
    if ok {
        Ok(())
    } else {
        Err(wrong("index", problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_takes_only_its_settings() {
        let d = Destination {
            stream: Some("Custom-X_CL".into()),
            ..Default::default()
        };
        assert_eq!(
            d.check("splunk_hec").unwrap_err().to_string(),
            "destination.stream: does not apply to shape \"splunk_hec\""
        );
        assert!(Destination::default().check("raw").is_ok());
        assert_eq!(
            Destination::default().check("sentinel").unwrap_err().field,
            "dcr_immutable_id"
        );
        let sentinel = Destination {
            dcr_immutable_id: Some(format!("dcr-{}", "a1".repeat(16))),
            stream: Some("Custom-DecnetEvents_CL".into()),
            ..Default::default()
        };
        assert!(sentinel.check("sentinel").is_ok());
    }

    #[test]
    fn elastic_index_patterns() {
        for good in ["decnet", "decnet-%Y.%m.%d", "logs-decnet-default"] {
            let d = Destination {
                index: Some(good.into()),
                ..Default::default()
            };
            assert!(d.check("elastic_bulk").is_ok(), "{good}");
        }
        for bad in ["Decnet", "a b", "_x", "a%H", "a/b", "", "a%"] {
            let d = Destination {
                index: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(d.check("elastic_bulk").unwrap_err().field, "index", "{bad}");
        }
        let at = chrono::DateTime::parse_from_rfc3339("2026-04-24T10:00:00+00:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            Destination::default().elastic_index_at(at),
            "decnet-2026.04.24"
        );
    }

    #[test]
    fn stored_settings_round_trip() {
        let d = Destination {
            index: Some("main".into()),
            indexer_ack: true,
            ..Default::default()
        };
        let json = d.to_json().unwrap();
        assert_eq!(
            json,
            serde_json::json!({"index": "main", "indexer_ack": true})
        );
        assert_eq!(Destination::from_json(Some(&json)).unwrap(), d);
        assert_eq!(Destination::default().to_json(), None);
    }
}
