//! `POST /api/v1/webhooks/{uuid}/test`: one synthetic delivery, through the same
//! client as the worker, recorded nowhere.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde_json::json;

use super::{dto::TestResult, lookup::find};
use crate::{
    api::{auth::Admin, state::AppState},
    delivery::{DeliveryClient, DeliveryOutcome, FailureKind},
    domain::{event::iso, Event},
    error::{AppError, ErrorBody},
    shape::Shape,
};

/// Send one `test.ping` event to the subscription's receiver (one attempt, no retries,
/// except that an OAuth2 token the receiver refuses is renewed once), with its headers,
/// authorization and TLS settings.
/// The answer is 200 whatever the receiver does; the row is left untouched.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{uuid}/test",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    responses(
        (status = 200, description = "What the receiver made of it", body = TestResult),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    )
)]
pub async fn test_ping(
    Admin(user): Admin,
    state: web::Data<AppState>,
    client: web::Data<DeliveryClient>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, &path).await?;
    let result = match super::secret::target(&state, &row)? {
        Ok(target) => {
            let event = Event::new(
                uuid::Uuid::new_v4().simple().to_string(),
                "test.ping".into(),
                iso(Utc::now()),
                "test".into(),
                json!({
                    "message": "Synthetic test event from DECNET",
                    "triggered_by": user.username,
                }),
            );
            // A destination's receiver takes only its own format: the ping is shaped.
            let event = match super::secret::shape_of(&row) {
                Shape::Raw | Shape::Slack | Shape::TheHive | Shape::Template(_) => Ok(event),
                destination => destination
                    .render(&event)
                    .map(|body| Event::outgoing(event.id.clone(), event.topic.clone(), body)),
            };
            let outcome = match event {
                Ok(event) => client.attempt_once(&target, &event).await,
                Err(e) => DeliveryOutcome::not_attempted(FailureKind::NonRetryable, e.to_string()),
            };
            TestResult {
                delivered: outcome.ok(),
                status_code: outcome.status,
                error: outcome.error,
            }
        }
        // A row written before today's URL rules: report it rather than fail.
        Err(e) => TestResult {
            delivered: false,
            status_code: None,
            error: Some(e.to_string()),
        },
    };
    tracing::info!(uuid = %row.uuid, by = %user.username, delivered = result.delivered, "test ping");
    Ok(HttpResponse::Ok().json(result))
}
