//! Subscription secrets in the API: `POST /api/v1/webhooks/{uuid}/rotate-secret`,
//! and the one place requests open stored secrets to sign with.

use actix_web::{web, HttpResponse};
use chrono::{SubsecRound, Utc};
use entity::webhook_subscription::{ActiveModel, Model};
use sea_orm::ActiveValue::{Set, Unchanged};

use super::{
    dto::{RotateSecret, Webhook, WebhookCreated, PLAINTEXT_SECRET_WARNING},
    lookup::find,
    notify::signal_changed,
    validate,
};
use crate::{
    api::{auth::Admin, body::read_json_or_default, state::AppState},
    config::Secret,
    db::subscriptions,
    error::{AppError, ErrorBody},
};

/// Replace the secret; the old one keeps signing beside it for
/// `DECNET_WEBHOOK_ROTATION_HOURS`, so receivers can switch without a gap.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{uuid}/rotate-secret",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    request_body(content = Option<RotateSecret>, description = "Optional; without `secret` one is generated"),
    responses(
        (status = 200, description = "Rotated; the new secret is shown this once", body = WebhookCreated),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    Admin(user): Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body: RotateSecret = read_json_or_default(payload).await?;
    let secret = match body.secret {
        Some(s) => validate::secret(s)?,
        None => validate::generate_secret(),
    };
    let row = find(&state, &path).await?;
    let now = Utc::now().trunc_subsecs(6);
    let expires = now + state.settings.webhook.rotation_window;
    let active = ActiveModel {
        uuid: Unchanged(row.uuid.clone()),
        secret: Set(state.secrets.seal(&row.uuid, &secret)),
        // The current secret, sealed in the current format if it was not already.
        previous_secret: Set(Some(state.secrets.reseal(&row.uuid, &row.secret))),
        secret_rotated_at: Set(Some(now)),
        previous_secret_expires_at: Set(Some(expires)),
        updated_at: Set(now),
        ..Default::default()
    };
    let row = subscriptions::update(&state.db, active).await?;
    tracing::info!(uuid = %row.uuid, name = %row.name, by = %user.username, previous_until = %expires, "webhook secret rotated");
    signal_changed(&state).await;
    Ok(HttpResponse::Ok().json(created(&state, &row, secret)))
}

/// The one answer that carries a secret (create and rotate).
pub(super) fn created(state: &AppState, row: &Model, secret: String) -> WebhookCreated {
    let mut webhook = Webhook::from(row);
    if !state.secrets.encrypts() {
        webhook.warnings.push(PLAINTEXT_SECRET_WARNING.to_owned());
    }
    WebhookCreated { webhook, secret }
}

/// The secrets a request signs with for `row`, newest first. A stored secret that
/// does not open is logged by uuid and answered 500, never signed with.
pub(super) fn signing_secrets(state: &AppState, row: &Model) -> Result<Vec<Secret>, AppError> {
    state.secrets.signing_secrets(row, Utc::now()).map_err(|e| {
        tracing::error!(uuid = %row.uuid, error = %e, "cannot open the stored secret");
        AppError::Internal
    })
}

/// The target a request delivers to for `row`: its URL (or why it cannot be used),
/// signed with its secrets and reached with its stored access, as the worker does.
pub(super) fn target(
    state: &AppState,
    row: &Model,
) -> Result<Result<crate::delivery::Target, crate::domain::UrlError>, AppError> {
    let secrets = signing_secrets(state, row)?;
    let access = state.secrets.receiver_access(row).map_err(|e| {
        tracing::error!(uuid = %row.uuid, error = %e, "cannot open the stored receiver access");
        AppError::Internal
    })?;
    let routing_key = destination_secret(state, row)?;
    Ok(crate::delivery::Target::for_subscription(
        &row.url,
        secrets,
        &shape_of(row),
        &row.uuid,
        routing_key,
    )
    .map(|target| target.with_access(&access)))
}

/// The subscription's shape; one that cannot be built sends as `raw` (the worker
/// dead-letters its events with the reason).
pub(super) fn shape_of(row: &Model) -> crate::shape::Shape {
    crate::shape::Shape::from_stored(
        &row.shape,
        row.template.as_deref(),
        row.destination.as_ref(),
    )
    .unwrap_or_default()
}

/// A PATCH `secret`: `None` when it equals the current one, else the value to store.
pub(super) fn patched_secret(state: &AppState, row: &Model, new: Option<String>) -> Option<String> {
    let new = new?;
    let same = state
        .secrets
        .open(&row.uuid, &row.secret)
        .is_ok_and(|current| current.expose() == new);
    (!same).then(|| state.secrets.seal(&row.uuid, &new))
}

/// The destination secret (PagerDuty's routing key) a request sends with, opened.
/// One that does not open is logged by uuid and answered 500, never sent.
pub(super) fn destination_secret(
    state: &AppState,
    row: &Model,
) -> Result<Option<Secret>, AppError> {
    row.destination_secret
        .as_deref()
        .map(|stored| state.secrets.open(&row.uuid, stored))
        .transpose()
        .map_err(|e| {
            tracing::error!(uuid = %row.uuid, error = %e, "cannot open the stored destination secret");
            AppError::Internal
        })
}

/// What a request does to the stored routing key, given the shape the subscription
/// will have: `Some(new)` to write (`Some(None)` clears), `None` to keep. A
/// `pagerduty` subscription must end with one; other shapes keep none.
pub(super) fn routing_key_change(
    state: &AppState,
    uuid: &str,
    stored: Option<&str>,
    shape: &str,
    given: Option<String>,
) -> Result<Option<Option<String>>, AppError> {
    let pagerduty = shape == "pagerduty";
    match given {
        Some(_) if !pagerduty => Err(AppError::Unprocessable(
            "routing_key: only allowed with shape \"pagerduty\"".into(),
        )),
        Some(key) => {
            let key = super::validate::routing_key(key)?;
            let same = stored
                .and_then(|s| state.secrets.open(uuid, s).ok())
                .is_some_and(|current| current.expose() == key);
            Ok((!same).then(|| Some(state.secrets.seal(uuid, &key))))
        }
        None if pagerduty && stored.is_none() => Err(AppError::Unprocessable(
            "routing_key: required with shape \"pagerduty\"".into(),
        )),
        None if !pagerduty && stored.is_some() => Ok(Some(None)),
        None => Ok(None),
    }
}
