//! `POST /api/v1/auth/login`: username and password in, access token out; and the
//! extractors that require the token on API routes.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest, HttpResponse};
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{allow::allow_only, body::read_json, state::AppState};
use crate::{
    auth::{self, Role},
    db,
    error::{AppError, ErrorBody},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/auth/login")
            .route(web::post().to(login))
            .default_service(allow_only("POST")),
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

/// A signed-in user: a valid `Authorization: Bearer <token>` whose user still exists.
/// Its role is the one stored now, so a demotion takes effect before the token expires.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub uuid: String,
    pub username: String,
    pub role: Role,
}

/// An [`AuthUser`] whose role is admin; anyone else gets 403.
#[derive(Clone, Debug)]
pub struct Admin(pub AuthUser);

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let Some(state) = state else {
                tracing::error!("AppState is not registered on the app");
                return Err(AppError::Internal);
            };
            let claims = token
                .and_then(|t| state.jwt.verify(&t))
                .ok_or(AppError::NotAuthenticated)?;
            let user = crate::db::users::get(&state.db, &claims.sub)
                .await?
                .ok_or(AppError::NotAuthenticated)?;
            Ok(Self {
                // An unknown stored role gets the least privilege.
                role: Role::parse(&user.role).unwrap_or(Role::Viewer),
                uuid: user.uuid,
                username: user.username,
            })
        })
    }
}

impl FromRequest for Admin {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            match user.role {
                Role::Admin => Ok(Self(user)),
                Role::Viewer => Err(AppError::Forbidden),
            }
        })
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}
