//! `POST /api/v1/webhooks/{uuid}/replay`: re-deliver dead letters, oldest first,
//! through the worker's delivery client.
//!
//! Each entry gets one attempt (`attempt_once`), not the worker's retry schedule: the
//! operator is waiting on the request, the schedule can span minutes (past any
//! client's or proxy's patience), and a failure loses nothing — the entry stays and
//! the next replay starts from it. The replay stops at the first failure, so the
//! receiver never sees a later event before an earlier one.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use sea_orm::DatabaseConnection;

use super::{
    dto::{ReplayFailure, ReplayResult},
    lookup::find,
};
use crate::{
    api::{auth::Admin, query::Query, state::AppState},
    db::{
        dead_letters,
        delivery_log::{self, LogRow},
    },
    delivery::{log_rows, DeliveryClient},
    domain::Event,
    error::{redact_db_error, AppError, ErrorBody},
};

/// Entries one request re-delivers at most; `remaining` tells the caller to go on.
pub const MAX_ENTRIES: u64 = 1000;
/// No new delivery starts after this long, so a slow receiver cannot hold the request
/// for `MAX_ENTRIES` timeouts.
const TIME_BUDGET: Duration = Duration::from_secs(60);

/// Re-deliver the subscription's dead letters oldest first, signed as the worker signs
/// now (both secrets during a rotation) and with its headers, authorization and TLS
/// settings, each with the exact body stored; each one delivered is removed. Stops at
/// the first failure. Publishes nothing and leaves the subscription row untouched.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{uuid}/replay",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("uuid" = String, Path, description = "Subscription UUID"),
        ("since" = Option<DateTime<Utc>>, Query, nullable = false,
            description = "Only entries dead-lettered at or after this ISO-8601 time; all when absent"),
        ("id" = Option<String>, Query, nullable = false,
            description = "Only the dead letter with this uuid (404 when the subscription has no such entry)"),
        ("limit" = Option<u64>, Query, nullable = false, minimum = 1, maximum = 1000,
            description = "Re-deliver at most this many entries (default 1000); `remaining` tells what is left"),
    ),
    responses(
        (status = 200, description = "What was re-delivered and what is left", body = ReplayResult),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription, or no such dead letter of it", body = ErrorBody),
        (status = 409, description = "A replay of this subscription is running", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    )
)]
pub async fn replay(
    Admin(user): Admin,
    state: web::Data<AppState>,
    client: web::Data<DeliveryClient>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let query = Query::parse(req.query_string(), &["since", "id", "limit"])?;
    let since = query.timestamp("since")?;
    let limit = query.number("limit", 1..=MAX_ENTRIES, MAX_ENTRIES)?;
    let only = query.get("id").map(str::to_owned);
    let row = find(&state, &path).await?;
    let Some(_guard) = state.replays.claim(&row.uuid) else {
        return Err(AppError::Conflict(
            "A replay of this webhook is already running".into(),
        ));
    };
    let target = super::secret::target(&state, &row)?.map_err(|e| e.to_string());
    let entries = match &only {
        // One entry: the operator picked it, so order among the others does not apply.
        Some(id) => vec![dead_letters::replayable_one(&state.db, &row.uuid, id)
            .await?
            .ok_or_else(AppError::not_found)?],
        None => dead_letters::replayable(&state.db, &row.uuid, since, limit).await?,
    };
    // A row written before today's URL rules cannot be sent to: the first entry
    // reports it, as the test ping does.

    let deadline = Instant::now() + TIME_BUDGET;
    let mut attempts = Vec::new();
    let subscription: std::sync::Arc<str> = row.uuid.as_str().into();
    let mut replayed = 0;
    let mut failed = None;
    for entry in entries {
        if Instant::now() >= deadline {
            break;
        }
        let target = match &target {
            Ok(target) => target,
            Err(e) => {
                failed = Some(ReplayFailure {
                    event_id: entry.event_id,
                    error: format!("invalid url: {e}"),
                    status_code: None,
                });
                break;
            }
        };
        let id = entry.uuid.clone();
        let event = stored_event(entry);
        let mut outcome = client.attempt_once(target, &event).await;
        log_rows(
            &subscription,
            &event.id,
            std::mem::take(&mut outcome.attempt_log),
            &mut attempts,
        );
        if !outcome.ok() {
            failed = Some(ReplayFailure {
                event_id: event.id,
                error: outcome.error.unwrap_or_else(|| "delivery failed".into()),
                status_code: outcome.status,
            });
            break;
        }
        // Delivered but still stored, it would be delivered again by the next replay
        // (receivers dedupe on the event id); the error is the answer.
        if let Err(e) = dead_letters::delete(&state.db, &id).await {
            record(&state.db, attempts).await;
            return Err(e.into());
        }
        replayed += 1;
    }
    record(&state.db, attempts).await;

    let (remaining, skipped) = dead_letters::count_replayable(&state.db, &row.uuid, since).await?;
    tracing::info!(
        uuid = %row.uuid,
        by = %user.username,
        replayed,
        failed = failed.is_some(),
        skipped,
        remaining,
        "dead letters replayed"
    );
    Ok(HttpResponse::Ok().json(ReplayResult {
        replayed,
        failed,
        skipped,
        remaining,
    }))
}

/// The event as the client needs it: only the id, topic and body go on the wire, and
/// the body is the exact stored envelope.
fn stored_event(entry: dead_letters::StoredDeadLetter) -> Event {
    Event::outgoing(entry.event_id, entry.topic, Bytes::from(entry.body))
}

/// The log is a record, not the result: a failure to write it is logged only.
async fn record(db: &DatabaseConnection, attempts: Vec<LogRow>) {
    if let Err(e) = delivery_log::insert(db, &attempts).await {
        tracing::warn!(error = %redact_db_error(&e), "could not log replay attempts");
    }
}
