//! `POST /api/v1/auth/login`: username and password in, access token out;
//! `POST /api/v1/auth/logout`; and the extractors that require the token on API routes.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest, HttpResponse};
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    allow::allow_only,
    body::read_json,
    login_limits::{retry_after_secs, LoginLimits},
    state::AppState,
};
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
    )
    .service(
        web::resource("/api/v1/auth/logout")
            .route(web::post().to(logout))
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
///
/// Failed logins slow down: after `DECNET_API_LOGIN_USER_FAILURES` failures of one
/// username, or `DECNET_API_LOGIN_ADDRESS_FAILURES` from one client address, further
/// attempts are refused with 429 for a back-off that doubles with each failure.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Unknown user, wrong password or disabled user",
            body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body", body = ErrorBody),
        (status = 429, description = "Too many failed logins of this username or from this address",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the back-off ends"))),
        (status = 503, description = "As many password checks as allowed are running",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let request: LoginRequest = read_json(payload).await?;
    let peer = req.peer_addr().map(|a| a.ip());
    let limits: &LoginLimits = &state.login_limits;
    // Refusals come before anything costly, and are not logged one by one: a flood of
    // them must not become a flood of log lines.
    if let Some(wait) = limits.locked(&request.username, peer) {
        tracing::debug!(
            username = ?loggable(&request.username),
            peer = peer.map(tracing::field::display),
            "login refused: backing off"
        );
        return Err(AppError::Throttled {
            detail: "Too many failed logins; try again later".into(),
            retry_after_secs: retry_after_secs(wait),
        });
    }
    let Some(slot) = limits.try_start_check() else {
        tracing::debug!(
            username = ?loggable(&request.username),
            peer = peer.map(tracing::field::display),
            "login refused: password checks busy"
        );
        return Err(AppError::Busy {
            detail: "Too many logins at once; try again shortly".into(),
            retry_after_secs: 1,
        });
    };
    let user = db::users::find_by_username(&state.db, &request.username).await?;
    // An unknown user costs one argon2 verification too, so timing does not tell
    // which usernames exist.
    let hash = user.as_ref().map_or_else(
        || auth::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let password = request.password;
    // The slot goes with the check: a client that hangs up does not end the hashing.
    let verified = web::block(move || {
        let verified = auth::verify_password(&password, &hash);
        drop(slot);
        verified
    })
    .await?;
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        other => {
            let reason = match other {
                None => "unknown user",
                Some(_) if !verified => "wrong password",
                Some(_) => "user disabled",
            };
            let backoff = limits.failed(&request.username, peer);
            tracing::warn!(
                username = ?loggable(&request.username),
                peer = peer.map(tracing::field::display),
                reason,
                backoff_secs = backoff.map(|d| d.as_secs_f64()),
                "failed login"
            );
            return Err(AppError::InvalidCredentials);
        }
    };
    limits.succeeded(&request.username);
    let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
    let access_token = state
        .jwt
        .issue(&user.uuid, role, user.token_version)
        .map_err(|e| {
            tracing::error!(error = %e, "could not sign an access token");
            AppError::Internal
        })?;
    tracing::info!(
        user = %user.username,
        peer = peer.map(tracing::field::display),
        "signed in"
    );
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token,
        token_type: "bearer".into(),
    }))
}

/// What a log line shows of a username a client sent: at most a real name's length
/// (the `?` formatting escapes control characters).
fn loggable(username: &str) -> &str {
    match username.char_indices().nth(auth::MAX_USERNAME_CHARS) {
        Some((end, _)) => &username[..end],
        None => username,
    }
}

/// Sign out: every access token of this user stops working, on every device.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out: every token of this user is revoked"),
        (status = 401, description = "Missing, invalid or already revoked token", body = ErrorBody),
    )
)]
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, AppError> {
    db::users::revoke_tokens(&state.db, &user.uuid).await?;
    tracing::info!(user = %user.username, "signed out");
    Ok(HttpResponse::NoContent().finish())
}

/// A signed-in user: a valid `Authorization: Bearer <token>` whose user still exists,
/// is enabled, and has not revoked it (its token version is the one in the token).
/// Its role is the one stored now.
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
            let user = db::users::get(&state.db, &claims.sub)
                .await?
                .filter(|u| !u.disabled && u.token_version == claims.ver)
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
