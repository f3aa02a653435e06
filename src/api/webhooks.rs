//! `/api/v1/webhooks`: subscription CRUD for admins.

pub mod access;
mod changes;
pub mod dead_letters;
pub mod deliveries;
pub mod dto;
pub mod filter_check;
pub mod ledger;
pub(crate) mod lookup;
mod notify;
pub mod options;
pub mod ping;
pub mod presets;
pub mod replay;
pub mod replays;
pub mod secret;
pub mod stats;
pub mod validate;

use actix_web::{web, HttpResponse};
use sea_orm::{ActiveValue::Set, DbErr, SqlErr};

use super::{allow::allow_only, auth::Admin, body::read_json, state::AppState};
use crate::{
    db::{self, subscriptions},
    domain::pattern::first_starting_with_wildcard,
    error::{redact_db_error, AppError, ErrorBody},
};
use access::AccessInput;
use changes::Changes;
use dto::{Webhook, WebhookCreate, WebhookCreated, WebhookDeleted, WebhookUpdate};
use lookup::{find, parse_uuid};
use notify::signal_changed;
use options::{Options, OptionsPatch};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Paths are registered without a trailing slash; `build_api` trims it from requests.
    cfg.service(
        web::resource("/api/v1/webhooks")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(allow_only("GET, POST")),
    )
    // Before `{uuid}`, which would otherwise take the path.
    .service(
        web::resource("/api/v1/webhooks/filter-check")
            .route(web::post().to(filter_check::filter_check))
            .default_service(allow_only("POST")),
    )
    // Before `{uuid}`, which would take these names for a subscription's.
    .service(
        web::resource("/api/v1/webhooks/presets")
            .route(web::get().to(presets::list_presets))
            .default_service(allow_only("GET")),
    )
    .service(
        web::resource("/api/v1/webhooks/stats")
            .route(web::get().to(stats::all_stats))
            .default_service(allow_only("GET")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete))
            .default_service(allow_only("GET, PATCH, DELETE")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/rotate-secret")
            .route(web::post().to(secret::rotate_secret))
            .default_service(allow_only("POST")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/test")
            .route(web::post().to(ping::test_ping))
            .default_service(allow_only("POST")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/dead-letters")
            .route(web::get().to(dead_letters::list_dead_letters))
            .default_service(allow_only("GET")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/replay")
            .route(web::post().to(replay::replay))
            .default_service(allow_only("POST")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/deliveries")
            .route(web::get().to(deliveries::list_deliveries))
            .default_service(allow_only("GET")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/ledger")
            .route(web::get().to(ledger::ledger))
            .default_service(allow_only("GET")),
    )
    .service(
        web::resource("/api/v1/webhooks/{uuid}/stats")
            .route(web::get().to(stats::subscription_stats))
            .default_service(allow_only("GET")),
    );
}

/// List subscriptions, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/",
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every subscription", body = [Webhook]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let rows = subscriptions::list_all(&state.db).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(Webhook::from).collect::<Vec<_>>()))
}

/// Subscribe a receiver URL to bus subject patterns.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/",
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = WebhookCreate,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = WebhookCreated),
        (status = 400, description = "No patterns", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "Too many creates and URL changes this minute", body = ErrorBody),
    )
)]
pub async fn create(
    Admin(user): Admin,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    // Every attempt counts, so the limit also bounds the DNS lookups of the URL guard.
    url_guard_allowance(&state, &user.uuid)?;
    let body: WebhookCreate = read_json(payload).await?;
    let name = validate::name(body.name)?;
    let secret = match body.secret {
        Some(s) => validate::secret(s)?,
        None => validate::generate_secret(),
    };
    let patterns = validate::patterns(
        &body.simple_events.unwrap_or_default(),
        &body.topic_patterns.unwrap_or_default(),
        validate::NO_PATTERNS_ON_CREATE,
    )?;
    let options = Options::off().apply(OptionsPatch {
        ordered: Some(body.ordered),
        batch_max: Some(body.batch_max),
        batch_linger_ms: Some(body.batch_linger_ms),
        rate_limit_per_sec: Some(body.rate_limit_per_sec),
        shape: body.shape,
        template: Some(body.template),
        destination: Some(body.destination),
    })?;
    options.check_template(&state.templates).await?;
    // The uuid first: the stored secrets are bound to it.
    let uuid = uuid::Uuid::new_v4().to_string();
    let routing_key =
        secret::routing_key_change(&state, &uuid, None, &options.shape, body.routing_key)?
            .flatten();
    let allow_private = state.settings.webhook.allow_private;
    let url = validate::url(&body.url, allow_private).await?;
    let access = AccessInput {
        headers: body.headers.map(Some),
        auth: body.auth.map(Some),
        tls: body.tls.map(Some),
    }
    .resolve(&Default::default(), allow_private)
    .await?;
    let filter = validate::filter(body.filter)?;
    if subscriptions::find_by_name(&state.db, &name)
        .await?
        .is_some()
    {
        return Err(name_taken(&name));
    }
    let stored_secret = state.secrets.seal(&uuid, &secret);
    let mut row =
        subscriptions::new_row(&name, url.as_str(), &stored_secret, &patterns, body.enabled);
    let sealed = state.secrets.seal_access(&uuid, &access);
    row.uuid = sea_orm::Set(uuid);
    options.set_on(&mut row);
    row.destination_secret = Set(routing_key);
    changes::set_access(&mut row, sealed);
    row.filter = Set(filter);
    let row = subscriptions::insert(&state.db, row)
        .await
        .map_err(|e| conflict_or_internal(e, &name))?;
    tracing::info!(uuid = %row.uuid, name = %row.name, by = %user.username, "webhook created");
    warn_wildcard(&row.uuid, &patterns);
    signal_changed(&state).await;
    Ok(HttpResponse::Created().json(secret::created(&state, &row, secret)))
}

/// One subscription.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{uuid}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    responses(
        (status = 200, description = "The subscription", body = Webhook),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    )
)]
pub async fn get(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, &path).await?;
    Ok(HttpResponse::Ok().json(Webhook::from(&row)))
}

/// Change a subscription; only the fields given, and only what differs, are written.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{uuid}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    request_body = WebhookUpdate,
    responses(
        (status = 200, description = "The subscription as it is now", body = Webhook),
        (status = 400, description = "The patterns would be cleared", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "A new `url`, over the creates and URL changes allowed this minute", body = ErrorBody),
    )
)]
pub async fn update(
    Admin(user): Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body: WebhookUpdate = read_json(payload).await?;
    let access_input = AccessInput {
        headers: body.headers,
        auth: body.auth,
        tls: body.tls,
    };
    // A new URL costs the guard a DNS lookup, as a create does, and shares its limit;
    // so does a token endpoint.
    if body.url.is_some() || access_input.has_token_url() {
        url_guard_allowance(&state, &user.uuid)?;
    }
    let name = body.name.map(validate::name).transpose()?;
    let secret = body.secret.map(validate::secret).transpose()?;
    let filter = body.filter.map(validate::filter).transpose()?;
    let patterns = match (body.simple_events, body.topic_patterns) {
        (None, None) => None,
        (simple, raw) => Some(validate::patterns(
            &simple.unwrap_or_default(),
            &raw.unwrap_or_default(),
            validate::NO_PATTERNS_ON_PATCH,
        )?),
    };
    let options = OptionsPatch {
        ordered: body.ordered,
        batch_max: body.batch_max,
        batch_linger_ms: body.batch_linger_ms,
        rate_limit_per_sec: body.rate_limit_per_sec,
        shape: body.shape,
        template: body.template,
        destination: body.destination,
    };
    let row = find(&state, &path).await?;
    let options = if options.is_empty() {
        None
    } else {
        let options = Options::of(&row).apply(options)?;
        options.check_template(&state.templates).await?;
        Some(options)
    };
    let url = match body.url {
        Some(u) => Some(validate::url(&u, state.settings.webhook.allow_private).await?),
        None => None,
    };
    let access = patched_access(&state, &row, access_input).await?;
    let secret = secret::patched_secret(&state, &row, secret);
    let new_shape = options
        .as_ref()
        .map_or(row.shape.as_str(), |o| o.shape.as_str());
    let destination_secret = secret::routing_key_change(
        &state,
        &row.uuid,
        row.destination_secret.as_deref(),
        new_shape,
        body.routing_key,
    )?;
    if let Some(patterns) = &patterns {
        warn_wildcard(&row.uuid, patterns);
    }
    let changes = Changes {
        name,
        url: url.map(|u| u.as_str().to_owned()),
        secret,
        patterns,
        enabled: body.enabled,
        options,
        destination_secret,
        access,
        filter,
    };
    let Some(mut active) = changes.against(&row) else {
        return Ok(HttpResponse::Ok().json(Webhook::from(&row)));
    };
    if active.secret.is_set() {
        // A secret set by PATCH replaces at once: no older one keeps signing.
        active.previous_secret = Set(None);
        active.previous_secret_expires_at = Set(None);
    }
    if let Set(new_name) = &active.name {
        if subscriptions::find_by_name(&state.db, new_name)
            .await?
            .is_some_and(|other| other.uuid != row.uuid)
        {
            return Err(name_taken(new_name));
        }
    }
    let new_name = match &active.name {
        Set(n) => n.clone(),
        _ => row.name.clone(),
    };
    let row = subscriptions::update(&state.db, active)
        .await
        .map_err(|e| conflict_or_internal(e, &new_name))?;
    tracing::info!(uuid = %row.uuid, name = %row.name, by = %user.username, "webhook updated");
    signal_changed(&state).await;
    Ok(HttpResponse::Ok().json(Webhook::from(&row)))
}

/// Remove a subscription, with its dead letters and delivery log.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{uuid}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    responses(
        (status = 200, description = "Deleted", body = WebhookDeleted),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    )
)]
pub async fn delete(
    Admin(user): Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let uuid = parse_uuid(&path)?;
    if !subscriptions::delete(&state.db, &uuid).await? {
        return Err(AppError::not_found());
    }
    tracing::info!(%uuid, by = %user.username, "webhook deleted");
    forget_history(&state, &uuid).await;
    signal_changed(&state).await;
    if state.settings.webhook.durable {
        if let Some(client) = state.bus.client() {
            // Its durable consumers would otherwise keep every matching event for ever.
            let (client, stream) = (client.clone(), state.settings.webhook.stream.clone());
            actix_web::rt::spawn(async move {
                crate::bus::durable::delete_consumers(&client, &stream, &uuid).await;
            });
        }
    }
    Ok(HttpResponse::Ok().json(WebhookDeleted {
        message: "Webhook deleted".into(),
    }))
}

/// The access columns to store after a PATCH: `None` when it gives none, or what it
/// gives is what is stored already (sealed values differ on every seal, so the
/// comparison is of the opened ones).
async fn patched_access(
    state: &AppState,
    row: &entity::webhook_subscription::Model,
    input: AccessInput,
) -> Result<Option<crate::secrets::SealedAccess>, AppError> {
    if input.is_empty() {
        return Ok(None);
    }
    let current = state.secrets.receiver_access(row).map_err(|e| {
        tracing::error!(uuid = %row.uuid, error = %e, "cannot open the stored receiver access");
        AppError::Internal
    })?;
    let new = input
        .resolve(&current, state.settings.webhook.allow_private)
        .await?;
    Ok((new != current).then(|| state.secrets.seal_access(&row.uuid, &new)))
}

/// One more create or URL change for `user` this minute, or 429
/// (`DECNET_WEBHOOK_CREATE_PER_MINUTE`).
fn url_guard_allowance(state: &AppState, user: &str) -> Result<(), AppError> {
    if state.create_limiter.try_acquire(user) {
        return Ok(());
    }
    Err(AppError::TooManyRequests(format!(
        "At most {} webhook creations and URL changes per minute",
        state.settings.webhook.create_per_minute
    )))
}

/// Accepted, but the operator hears of it: `>` reaches NATS's own request replies.
fn warn_wildcard(uuid: &str, patterns: &[String]) {
    if let Some(pattern) = first_starting_with_wildcard(patterns) {
        tracing::warn!(%uuid, pattern, "a pattern starting with a wildcard also matches NATS's internal subjects (_INBOX)");
    }
}

fn name_taken(name: &str) -> AppError {
    AppError::Conflict(format!("A webhook named {name:?} already exists"))
}

/// A unique-name race lost to a concurrent request is a conflict, not a crash.
fn conflict_or_internal(e: DbErr, name: &str) -> AppError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => name_taken(name),
        _ => AppError::from(e),
    }
}

/// A deleted subscription's dead letters and delivery log go with it. The delete
/// stands if this fails: retention sweeps whatever is left.
async fn forget_history(state: &AppState, uuid: &str) {
    if let Err(e) = db::dead_letters::delete_for_subscription(&state.db, uuid).await {
        tracing::warn!(%uuid, error = %redact_db_error(&e), "could not delete the dead letters of a deleted webhook");
    }
    if let Err(e) = db::delivery_log::delete_for_subscription(&state.db, uuid).await {
        tracing::warn!(%uuid, error = %redact_db_error(&e), "could not delete the delivery log of a deleted webhook");
    }
    if let Err(e) = db::ledger::delete_for_subscription(&state.db, uuid).await {
        tracing::warn!(%uuid, error = %redact_db_error(&e), "could not delete the ledger of a deleted webhook");
    }
}
