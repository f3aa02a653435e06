//! `GET /api/v1/webhooks/presets`: what a create form offers and starts from (the
//! event presets and their patterns, the body shapes, the option defaults and
//! bounds), so a client never keeps its own copy of the API's rules.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::options::{
    Options, ShapeName, MAX_BATCH, MAX_LINGER_MS, MAX_RATE_PER_SEC, MIN_RATE_PER_SEC,
};
use crate::{
    api::auth::Admin,
    domain::SimpleEvent,
    error::{AppError, ErrorBody},
};

/// One preset of `simple_events` and the patterns it stands for.
#[derive(Serialize, ToSchema)]
pub struct EventPreset {
    #[schema(value_type = SimpleEvent)]
    pub name: SimpleEvent,
    /// For people, e.g. `Attacker detail`.
    pub label: &'static str,
    pub patterns: Vec<&'static str>,
}

/// One body shape.
#[derive(Serialize, ToSchema)]
pub struct ShapePreset {
    #[schema(value_type = ShapeName)]
    pub name: ShapeName,
    pub label: &'static str,
    /// Whether the shape takes `batch_max` above 1.
    pub batches: bool,
}

/// What a subscription created without options has.
#[derive(Serialize, ToSchema)]
pub struct OptionDefaults {
    pub ordered: bool,
    pub batch_max: Option<i32>,
    pub batch_linger_ms: Option<i32>,
    pub rate_limit_per_sec: Option<f64>,
    pub shape: String,
    pub template: Option<String>,
    /// No filter: every event is delivered.
    pub filter: Option<String>,
    /// No destination settings (they belong to the destination shapes).
    #[schema(value_type = Option<Object>)]
    pub destination: Option<serde_json::Value>,
}

/// The accepted ranges of the numeric options (inclusive).
#[derive(Serialize, ToSchema)]
pub struct OptionLimits {
    pub batch_max: [i32; 2],
    pub batch_linger_ms: [i32; 2],
    /// How long a partial batch waits when `batch_linger_ms` is not set.
    pub batch_linger_ms_when_unset: u64,
    pub rate_limit_per_sec: [f64; 2],
}

#[derive(Serialize, ToSchema)]
pub struct Presets {
    pub simple_events: Vec<EventPreset>,
    pub shapes: Vec<ShapePreset>,
    pub option_defaults: OptionDefaults,
    pub option_limits: OptionLimits,
}

const EVENTS: [(SimpleEvent, &str); 3] = [
    (SimpleEvent::AttackerDetail, "Attacker detail"),
    (SimpleEvent::DeckyStatus, "Decky status"),
    (SimpleEvent::SystemStatus, "System status"),
];

const SHAPES: [ShapeName; 10] = [
    ShapeName::Raw,
    ShapeName::Slack,
    ShapeName::Thehive,
    ShapeName::Template,
    ShapeName::SplunkHec,
    ShapeName::ElasticBulk,
    ShapeName::Sentinel,
    ShapeName::Pagerduty,
    ShapeName::Teams,
    ShapeName::Discord,
];

fn shape_preset(name: ShapeName) -> ShapePreset {
    let (label, batches) = match name {
        ShapeName::Raw => ("raw (envelope)", true),
        ShapeName::Slack => ("slack", false),
        ShapeName::Thehive => ("thehive", false),
        ShapeName::Template => ("template", true),
        ShapeName::SplunkHec => ("Splunk HEC", true),
        ShapeName::ElasticBulk => ("Elasticsearch / OpenSearch _bulk", true),
        ShapeName::Sentinel => ("Microsoft Sentinel (Logs Ingestion)", true),
        ShapeName::Pagerduty => ("PagerDuty Events v2", false),
        ShapeName::Teams => ("Microsoft Teams (Workflows)", false),
        ShapeName::Discord => ("Discord", false),
    };
    ShapePreset {
        name,
        label,
        batches,
    }
}

pub fn presets() -> Presets {
    let off = Options::off();
    Presets {
        simple_events: EVENTS
            .iter()
            .map(|(name, label)| EventPreset {
                name: *name,
                label,
                patterns: name.patterns().to_vec(),
            })
            .collect(),
        shapes: SHAPES.into_iter().map(shape_preset).collect(),
        option_defaults: OptionDefaults {
            ordered: off.ordered,
            batch_max: off.batch_max,
            batch_linger_ms: off.batch_linger_ms,
            rate_limit_per_sec: off.rate_limit_per_sec,
            shape: off.shape,
            template: off.template,
            filter: None,
            destination: None,
        },
        option_limits: OptionLimits {
            batch_max: [1, MAX_BATCH],
            batch_linger_ms: [1, MAX_LINGER_MS],
            batch_linger_ms_when_unset: u64::try_from(
                crate::actors::spec::DEFAULT_BATCH_LINGER.as_millis(),
            )
            .unwrap_or(u64::MAX),
            rate_limit_per_sec: [MIN_RATE_PER_SEC, MAX_RATE_PER_SEC],
        },
    }
}

/// The event presets, body shapes and option defaults a create form starts from.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/presets",
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Presets and defaults", body = Presets),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub async fn list_presets(_: Admin) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(presets()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_and_shape_is_listed_with_the_api_rules() {
        let p = presets();
        let names: Vec<_> = p.simple_events.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                SimpleEvent::AttackerDetail,
                SimpleEvent::DeckyStatus,
                SimpleEvent::SystemStatus
            ]
        );
        assert_eq!(
            p.simple_events[1].patterns,
            ["decky.*.state", "decky.*.traffic"]
        );
        // Each shape's batching flag is what option validation enforces (given the
        // settings a shape cannot go without).
        let sentinel = crate::shape::Destination {
            dcr_immutable_id: Some(format!("dcr-{}", "0".repeat(32))),
            stream: Some("Custom-DecnetEvents_CL".into()),
            ..Default::default()
        };
        for shape in &p.shapes {
            let patch = super::super::options::OptionsPatch {
                batch_max: Some(Some(2)),
                shape: Some(shape.name),
                template: Some((shape.name == ShapeName::Template).then(|| "{{ id }}".into())),
                destination: Some((shape.name == ShapeName::Sentinel).then(|| sentinel.clone())),
                ..Default::default()
            };
            assert_eq!(
                Options::off().apply(patch).is_ok(),
                shape.batches,
                "{:?}",
                shape.name
            );
        }
        assert_eq!(p.option_defaults.shape, "raw");
    }
}
