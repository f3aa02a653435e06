//! `POST /api/v1/auth/login`: username and password in, access token out.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{body::read_json, openapi::ErrorBody, AppState};
use crate::{
    auth::{self, Role},
    db,
    error::AppError,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/auth/login")
            .route(web::post().to(login))
            .default_service(super::allow_only("POST")),
    );
}

/// Credentials; deliberately not `Debug`, so the password cannot end up in a log line.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
}

/// Exchange credentials for an access token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Unknown user or wrong password", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body", body = ErrorBody),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let request: LoginRequest = read_json(payload).await?;
    let user = db::users::find_by_username(&state.db, &request.username).await?;
    // An unknown user costs one argon2 verification too, so timing does not tell
    // which usernames exist.
    let hash = user.as_ref().map_or_else(
        || auth::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let password = request.password;
    let verified = web::block(move || auth::verify_password(&password, &hash)).await?;
    let user = user
        .filter(|_| verified)
        .ok_or(AppError::InvalidCredentials)?;
    let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
    let access_token = state.jwt.issue(&user.uuid, role).map_err(|e| {
        tracing::error!(error = %e, "could not sign an access token");
        AppError::Internal
    })?;
    tracing::info!(user = %user.username, "signed in");
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token,
        token_type: "bearer".into(),
    }))
}
