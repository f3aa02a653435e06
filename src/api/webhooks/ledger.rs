//! `GET /api/v1/webhooks/{uuid}/ledger`: what became of every event the subscription
//! received, summed over every worker that reported, with each worker's share.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::lookup::find;
use crate::{
    api::{auth::Admin, state::AppState},
    db::ledger::{self, Counts},
    domain::event::iso,
    error::{AppError, ErrorBody},
};

/// The ledger of one subscription. In the totals and in each share,
/// `received = filtered + delivered + dead_lettered + released + queued + in_flight`
/// (each worker's counts are taken at one instant and written at most every 2 s).
#[derive(Serialize, ToSchema)]
pub struct Ledger {
    pub uuid: String,
    /// Sums over every worker.
    #[serde(flatten)]
    pub totals: Counts,
    /// Each worker's counts, the latest report first; a worker id is new on
    /// every start of a worker, so a restarted worker's earlier run stays listed.
    pub workers: Vec<WorkerShare>,
}

/// One worker's counts, as it last reported them.
#[derive(Serialize, ToSchema)]
pub struct WorkerShare {
    pub worker_id: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "iso_one")]
    pub reported_at: DateTime<Utc>,
}

/// The subscription's ledger.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{uuid}/ledger",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    responses(
        (status = 200, description = "The totals and each worker's share", body = Ledger),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    )
)]
pub async fn ledger(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    answer(&state, &path).await
}

/// The ledger of the subscription `uuid`, as both the admin and the console routes
/// answer it.
pub async fn answer(state: &AppState, uuid: &str) -> Result<HttpResponse, AppError> {
    let row = find(state, uuid).await?;
    let shares = ledger::shares(&state.db, &row.uuid).await?;
    let mut totals = Counts::default();
    for share in &shares {
        totals.add(&share.counts);
    }
    Ok(HttpResponse::Ok().json(Ledger {
        uuid: row.uuid,
        totals,
        workers: shares
            .into_iter()
            .map(|s| WorkerShare {
                worker_id: s.worker_id,
                counts: s.counts,
                reported_at: s.reported_at,
            })
            .collect(),
    }))
}

fn iso_one<S: serde::Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*ts))
}
