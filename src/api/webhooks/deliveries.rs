//! `GET /api/v1/webhooks/{uuid}/deliveries`: the delivery log, newest first.

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::ToSchema;

use super::{
    dto::{DeliveryAttempt, DeliveryPage},
    lookup::find,
};
use crate::{
    api::{
        auth::Admin,
        query::{invalid, Page, Query},
        state::AppState,
    },
    db::delivery_log,
    error::{AppError, ErrorBody},
};

/// Which attempts to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Outcome {
    /// The receiver answered 2xx.
    Ok,
    /// Anything else.
    Failed,
}

impl Outcome {
    fn parse(raw: &str) -> Result<Self, AppError> {
        match raw {
            "ok" => Ok(Self::Ok),
            "failed" => Ok(Self::Failed),
            _ => Err(invalid("outcome", "must be ok or failed")),
        }
    }
}

/// Every HTTP attempt made for the subscription, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{uuid}/deliveries",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("uuid" = String, Path, description = "Subscription UUID"),
        Page,
        ("outcome" = Option<Outcome>, Query, nullable = false, description = "Only successful or only failed attempts"),
    ),
    responses(
        (status = 200, description = "One page of attempts", body = DeliveryPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    answer(&state, &path, &req).await
}

/// The answer of a delivery-log route, whoever may ask for it.
pub(crate) async fn answer(
    state: &AppState,
    path: &str,
    req: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let query = Query::parse(req.query_string(), &["limit", "offset", "outcome"])?;
    let page = Page::from_query(&query)?;
    let outcome = query.get("outcome").map(Outcome::parse).transpose()?;
    let row = find(state, path).await?;
    let ok = outcome.map(|o| o == Outcome::Ok);
    let (rows, total) =
        delivery_log::list(&state.db, &row.uuid, ok, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(DeliveryPage {
        items: rows.into_iter().map(DeliveryAttempt::from).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}
