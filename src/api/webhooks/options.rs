//! Per-subscription delivery options: ordering, batching, a rate limit and the
//! payload shape. All are off by default; the rules between them are checked on the
//! options a subscription would have after the request.

use entity::webhook_subscription::{ActiveModel, Model};
use sea_orm::ActiveValue::Set;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::{
    error::AppError,
    shape::{sandbox::Sandbox, Batching, Destination, Shape, ShapeError},
};

pub const MAX_BATCH: i32 = 50;
pub const MAX_LINGER_MS: i32 = 5000;
/// The rate limit's bounds, the token bucket's: below the least, one delivery would
/// wait over a quarter of an hour (and far below it the wait is not even a
/// representable duration).
pub const MIN_RATE_PER_SEC: f64 = crate::actors::rate::MIN_RATE;
pub const MAX_RATE_PER_SEC: f64 = crate::actors::rate::MAX_RATE;

/// The body each event becomes (docs/shapes.md, docs/destinations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShapeName {
    /// The envelope itself (the default).
    Raw,
    /// A Slack incoming-webhook message `{"text": …}`.
    Slack,
    /// A TheHive 5 alert.
    Thehive,
    /// The subscription's own minijinja template.
    Template,
    /// Splunk HTTP Event Collector events.
    SplunkHec,
    /// Elasticsearch/OpenSearch `_bulk` (NDJSON, ECS documents).
    ElasticBulk,
    /// Microsoft Sentinel through the Azure Monitor Logs Ingestion API.
    Sentinel,
    /// PagerDuty Events API v2 triggers.
    Pagerduty,
    /// A Microsoft Teams Workflows message with an Adaptive Card.
    Teams,
    /// A Discord webhook message.
    Discord,
}

impl ShapeName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Slack => "slack",
            Self::Thehive => "thehive",
            Self::Template => "template",
            Self::SplunkHec => "splunk_hec",
            Self::ElasticBulk => "elastic_bulk",
            Self::Sentinel => "sentinel",
            Self::Pagerduty => "pagerduty",
            Self::Teams => "teams",
            Self::Discord => "discord",
        }
    }
}

/// The option columns of a subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub ordered: bool,
    pub batch_max: Option<i32>,
    pub batch_linger_ms: Option<i32>,
    pub rate_limit_per_sec: Option<f64>,
    pub shape: String,
    pub template: Option<String>,
    /// The destination settings as stored (`None`: none).
    pub destination: Option<serde_json::Value>,
}

/// The options a PATCH gives: `None` when absent; for the nullable ones
/// `Some(None)` is an explicit `null`, which clears the option.
#[derive(Default)]
pub struct OptionsPatch {
    pub ordered: Option<bool>,
    pub batch_max: Option<Option<i32>>,
    pub batch_linger_ms: Option<Option<i32>>,
    pub rate_limit_per_sec: Option<Option<f64>>,
    pub shape: Option<ShapeName>,
    pub template: Option<Option<String>>,
    pub destination: Option<Option<Destination>>,
}

impl OptionsPatch {
    pub fn is_empty(&self) -> bool {
        self.ordered.is_none()
            && self.batch_max.is_none()
            && self.batch_linger_ms.is_none()
            && self.rate_limit_per_sec.is_none()
            && self.shape.is_none()
            && self.template.is_none()
            && self.destination.is_none()
    }
}

impl Options {
    pub fn of(row: &Model) -> Self {
        Self {
            ordered: row.ordered,
            batch_max: row.batch_max,
            batch_linger_ms: row.batch_linger_ms,
            rate_limit_per_sec: row.rate_limit_per_sec,
            shape: row.shape.clone(),
            template: row.template.clone(),
            destination: row.destination.clone(),
        }
    }

    /// What a subscription created without any option has: everything off.
    pub fn off() -> Self {
        Self {
            ordered: false,
            batch_max: None,
            batch_linger_ms: None,
            rate_limit_per_sec: None,
            shape: ShapeName::Raw.as_str().to_owned(),
            template: None,
            destination: None,
        }
    }

    /// `self` with `patch` applied, checked. Turning an option off also drops
    /// what only made sense with it (a linger with batching, a template with
    /// `shape = "template"`), unless the same request sets it, which is an error.
    pub fn apply(&self, patch: OptionsPatch) -> Result<Self, AppError> {
        let batch_max = patch.batch_max.unwrap_or(self.batch_max);
        let shape = patch
            .shape
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|| self.shape.clone());
        let batching = batch_max.is_some_and(|n| n > 1);
        let batch_linger_ms = match patch.batch_linger_ms {
            Some(given) => given,
            None if batching => self.batch_linger_ms,
            None => None,
        };
        let template = match patch.template {
            Some(given) => given,
            None if shape == ShapeName::Template.as_str() => self.template.clone(),
            None => None,
        };
        // Settings belong to their shape: a new shape starts without them.
        let destination = match patch.destination {
            Some(given) => given.and_then(|d| d.to_json()),
            None if shape == self.shape => self.destination.clone(),
            None => None,
        };
        let options = Self {
            destination,
            ordered: patch.ordered.unwrap_or(self.ordered),
            batch_max,
            batch_linger_ms,
            rate_limit_per_sec: patch.rate_limit_per_sec.unwrap_or(self.rate_limit_per_sec),
            shape,
            template,
        };
        options.check()?;
        Ok(options)
    }

    /// Write every option onto a new row.
    pub fn set_on(self, row: &mut ActiveModel) {
        row.ordered = Set(self.ordered);
        row.batch_max = Set(self.batch_max);
        row.batch_linger_ms = Set(self.batch_linger_ms);
        row.rate_limit_per_sec = Set(self.rate_limit_per_sec);
        row.shape = Set(self.shape);
        row.template = Set(self.template);
        row.destination = Set(self.destination);
    }

    fn check(&self) -> Result<(), AppError> {
        if let Some(n) = self.batch_max {
            if !(1..=MAX_BATCH).contains(&n) {
                return Err(invalid(
                    "batch_max",
                    format!("must be 1–{MAX_BATCH} (1: no batching)"),
                ));
            }
        }
        let batching = self.batch_max.is_some_and(|n| n > 1);
        if let Some(ms) = self.batch_linger_ms {
            if !(1..=MAX_LINGER_MS).contains(&ms) {
                return Err(invalid(
                    "batch_linger_ms",
                    format!("must be 1–{MAX_LINGER_MS} milliseconds"),
                ));
            }
            if !batching {
                return Err(invalid(
                    "batch_linger_ms",
                    "only applies with batch_max above 1",
                ));
            }
        }
        if let Some(rate) = self.rate_limit_per_sec {
            if !(MIN_RATE_PER_SEC..=MAX_RATE_PER_SEC).contains(&rate) {
                return Err(invalid(
                    "rate_limit_per_sec",
                    format!(
                        "must be {MIN_RATE_PER_SEC}–{MAX_RATE_PER_SEC} (deliveries per second)"
                    ),
                ));
            }
        }
        let is_template = self.shape == ShapeName::Template.as_str();
        match (&self.template, is_template) {
            (None, true) => {
                return Err(invalid("template", "required with shape \"template\""));
            }
            (Some(_), false) => {
                return Err(invalid("template", "only allowed with shape \"template\""));
            }
            _ => {}
        }
        let destination = Destination::from_json(self.destination.as_ref())
            .map_err(|e| AppError::Unprocessable(e.to_string()))?;
        destination
            .check(&self.shape)
            .map_err(|e| AppError::Unprocessable(e.to_string()))?;
        let shape =
            Shape::from_row(&self.shape, self.template.as_deref(), &destination).map_err(|e| {
                let field = if is_template { "template" } else { "shape" };
                invalid(field, e)
            })?;
        if batching && shape.batching() == Batching::Never {
            return Err(invalid(
                "batch_max",
                format!(
                    "shape {:?} posts one object per request, as its receiver expects; \
                     batching needs shape \"raw\", \"template\", \"splunk_hec\", \
                     \"elastic_bulk\" or \"sentinel\"",
                    self.shape
                ),
            ));
        }
        Ok(())
    }
}

impl Options {
    /// The template, if any, compiles and renders sample events within the
    /// sandbox's limits (a syntax error names its line). Run after [`Self::apply`].
    pub async fn check_template(&self, templates: &Sandbox) -> Result<(), AppError> {
        let Some(source) = &self.template else {
            return Ok(());
        };
        match templates.check(source).await {
            Ok(()) => Ok(()),
            Err(ShapeError::Unavailable(e)) => {
                tracing::error!(error = %e, "cannot check a template: the sandbox is unavailable");
                Err(AppError::Internal)
            }
            Err(e) => Err(invalid("template", e)),
        }
    }
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> AppError {
    AppError::Unprocessable(format!("{field}: {problem}"))
}

/// For `Option<Option<T>>` PATCH fields: present (even `null`) is `Some`, so
/// `#[serde(default)]` leaves only an absent field `None`.
pub fn present<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(r: Result<Options, AppError>) -> String {
        match r {
            Err(AppError::Unprocessable(m)) => m,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn nothing_given_is_everything_off() {
        assert_eq!(
            Options::off().apply(OptionsPatch::default()).unwrap(),
            Options::off()
        );
    }

    #[test]
    fn ranges_name_the_field() {
        let off = Options::off();
        let with = |p: OptionsPatch| off.apply(p);
        assert!(detail(with(OptionsPatch {
            batch_max: Some(Some(51)),
            ..Default::default()
        }))
        .starts_with("batch_max: "));
        assert!(detail(with(OptionsPatch {
            batch_max: Some(Some(0)),
            ..Default::default()
        }))
        .starts_with("batch_max: "));
        assert!(detail(with(OptionsPatch {
            batch_max: Some(Some(10)),
            batch_linger_ms: Some(Some(5001)),
            ..Default::default()
        }))
        .starts_with("batch_linger_ms: "));
        assert!(detail(with(OptionsPatch {
            batch_linger_ms: Some(Some(10)),
            ..Default::default()
        }))
        .starts_with("batch_linger_ms: only applies"));
        for rate in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            10_001.0,
            1e-30,
            0.000_999,
        ] {
            assert!(detail(with(OptionsPatch {
                rate_limit_per_sec: Some(Some(rate)),
                ..Default::default()
            }))
            .starts_with("rate_limit_per_sec: "));
        }
        for rate in [0.5, MIN_RATE_PER_SEC, MAX_RATE_PER_SEC] {
            assert!(with(OptionsPatch {
                rate_limit_per_sec: Some(Some(rate)),
                ..Default::default()
            })
            .is_ok());
        }
    }

    #[test]
    fn template_goes_with_its_shape() {
        let off = Options::off();
        assert!(detail(off.apply(OptionsPatch {
            shape: Some(ShapeName::Template),
            ..Default::default()
        }))
        .starts_with("template: required"));
        assert!(detail(off.apply(OptionsPatch {
            template: Some(Some("{{ payload }}".into())),
            ..Default::default()
        }))
        .starts_with("template: only allowed"));

        let templated = off
            .apply(OptionsPatch {
                shape: Some(ShapeName::Template),
                template: Some(Some("{{ payload }}".into())),
                ..Default::default()
            })
            .unwrap();
        // Leaving the template shape drops the template.
        let raw = templated
            .apply(OptionsPatch {
                shape: Some(ShapeName::Raw),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(raw, Options::off());
    }

    #[test]
    fn batching_needs_a_shape_that_takes_a_list() {
        let err = detail(Options::off().apply(OptionsPatch {
            shape: Some(ShapeName::Slack),
            batch_max: Some(Some(10)),
            ..Default::default()
        }));
        assert!(
            err.starts_with("batch_max: shape \"slack\" posts one object"),
            "{err}"
        );
        assert!(Options::off()
            .apply(OptionsPatch {
                shape: Some(ShapeName::Thehive),
                batch_max: Some(Some(1)),
                ..Default::default()
            })
            .is_ok());
    }

    #[test]
    fn clearing_batching_drops_the_linger() {
        let batched = Options::off()
            .apply(OptionsPatch {
                batch_max: Some(Some(10)),
                batch_linger_ms: Some(Some(200)),
                ..Default::default()
            })
            .unwrap();
        let cleared = batched
            .apply(OptionsPatch {
                batch_max: Some(None),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(cleared, Options::off());
    }
}
