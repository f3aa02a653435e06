//! `GET /api/v1/auth/first-run`: whether no user exists yet, so the login page can say
//! how to create the first admin. It tells nothing else, and nothing once a user
//! exists but that one does.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::{allow::allow_only, state::AppState};
use crate::{
    db,
    error::{AppError, ErrorBody},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/auth/first-run")
            .route(web::get().to(first_run))
            .default_service(allow_only("GET")),
    );
}

#[derive(Serialize, ToSchema)]
pub struct FirstRun {
    /// True while no user exists: create the first admin with
    /// `decnet user add NAME --role admin`.
    pub no_users: bool,
}

/// Whether the service still has no user at all (no token needed).
#[utoipa::path(
    get,
    path = "/api/v1/auth/first-run",
    tag = "auth",
    responses(
        (status = 200, description = "Whether no user exists yet", body = FirstRun),
        (status = 500, description = "The database could not be read", body = ErrorBody),
    )
)]
pub async fn first_run(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    // Once a user exists the answer never needs the database again: the last admin
    // cannot be deleted.
    let exists =
        state.users_exist.load(Ordering::Relaxed) || db::users::any_exists(&state.db).await?;
    if exists {
        state.users_exist.store(true, Ordering::Relaxed);
    }
    Ok(HttpResponse::Ok().json(FirstRun { no_users: !exists }))
}
