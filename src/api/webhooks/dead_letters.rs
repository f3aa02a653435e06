//! `GET /api/v1/webhooks/{uuid}/dead-letters`: what could not be delivered, newest first.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    dto::{DeadLetter, DeadLetterPage},
    lookup::find,
};
use crate::{
    api::{
        auth::Admin,
        query::{Page, Query},
        state::AppState,
    },
    db::dead_letters,
    error::{AppError, ErrorBody},
};

/// The subscription's dead letters, newest first, with their exact bodies.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{uuid}/dead-letters",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID"), Page),
    responses(
        (status = 200, description = "One page of dead letters", body = DeadLetterPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    )
)]
pub async fn list_dead_letters(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    answer(&state, &path, &req).await
}

/// The answer of a dead-letter route, whoever may ask for it.
pub(crate) async fn answer(
    state: &AppState,
    path: &str,
    req: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let page = Page::from_query(&Query::parse(req.query_string(), &Page::PARAMS)?)?;
    let row = find(state, path).await?;
    let (rows, total) = dead_letters::list(&state.db, &row.uuid, page.limit, page.offset).await?;
    Ok(HttpResponse::Ok().json(DeadLetterPage {
        items: rows.into_iter().map(DeadLetter::from).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}
