//! `POST /api/v1/webhooks/filter-check`: try a filter on a sample event before saving it.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    api::{auth::Admin, body::read_json},
    domain::Event,
    error::{AppError, ErrorBody},
    filter::{Filter, Position, MAX_FILTER_BYTES},
};

/// A filter and an event to try it on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterCheck {
    /// The expression (docs/filters.md).
    #[schema(max_length = 2048, example = "payload.score >= 80")]
    pub filter: String,
    /// An event as published on the bus: `topic` names its subject, `payload` its
    /// content; `id`, `ts` and `type` are optional, as on the bus.
    #[schema(value_type = Object, example = json!({"topic": "attacker.scored", "type": "score", "payload": {"attacker_ip": "198.51.100.23", "score": 91}}))]
    pub event: serde_json::Value,
}

/// What the filter made of the event.
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct FilterVerdict {
    /// `match`: the event would be delivered; `no_match`: counted as filtered;
    /// `error`: the filter does not compile (`stage = "compile"`, not saveable) or
    /// failed on this event (`stage = "evaluate"`: counted as filtered, and as a
    /// filter error).
    pub result: VerdictKind,
    /// Where it went wrong, when `result` is `error`.
    pub stage: Option<Stage>,
    pub error: Option<String>,
    /// Where in the filter the compile error is, when known.
    pub position: Option<Position>,
}

#[derive(Serialize, ToSchema, Debug, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Match,
    NoMatch,
    Error,
}

#[derive(Serialize, ToSchema, Debug, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Compile,
    Evaluate,
}

/// Compile a filter and run it on one event, as the worker would.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/filter-check",
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = FilterCheck,
    responses(
        (status = 200, description = "The verdict: match, no match, or the error", body = FilterVerdict),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Invalid field: `filter` over 2048 bytes, `event` not an object, or its `topic` not a string", body = ErrorBody),
    )
)]
pub async fn filter_check(_: Admin, payload: web::Payload) -> Result<HttpResponse, AppError> {
    let body: FilterCheck = read_json(payload).await?;
    if body.filter.len() > MAX_FILTER_BYTES {
        return Err(AppError::Unprocessable(format!(
            "filter: is {} bytes; at most {MAX_FILTER_BYTES}",
            body.filter.len()
        )));
    }
    let event = sample_event(&body.event)?;
    Ok(HttpResponse::Ok().json(verdict(&body.filter, &event)))
}

/// The event the worker would decode from this bus message.
fn sample_event(event: &serde_json::Value) -> Result<Event, AppError> {
    let serde_json::Value::Object(fields) = event else {
        return Err(AppError::Unprocessable("event: must be an object".into()));
    };
    let topic = match fields.get("topic") {
        None => "",
        Some(serde_json::Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(AppError::Unprocessable(
                "event.topic: must be a string".into(),
            ))
        }
    };
    let bytes =
        serde_json::to_vec(event).map_err(|e| AppError::Unprocessable(format!("event: {e}")))?;
    Event::from_bus(topic, &bytes, None, chrono::Utc::now())
        .map_err(|e| AppError::Unprocessable(format!("event: {e}")))
}

fn verdict(source: &str, event: &Event) -> FilterVerdict {
    let (result, stage, error) = match Filter::compile(source) {
        Err(e) => (VerdictKind::Error, Some(Stage::Compile), Err(e)),
        Ok(filter) => match filter.matches(event) {
            Ok(true) => (VerdictKind::Match, None, Ok(())),
            Ok(false) => (VerdictKind::NoMatch, None, Ok(())),
            Err(e) => (VerdictKind::Error, Some(Stage::Evaluate), Err(e)),
        },
    };
    let (error, position) = match error {
        Ok(()) => (None, None),
        Err(e) => (Some(e.message), e.position),
    };
    FilterVerdict {
        result,
        stage,
        error,
        position,
    }
}
