//! `/api/v1/console`: what the web page shows, readable by every signed-in user.
//!
//! The `/api/v1/webhooks` routes are for admins only; these answer viewers too, with
//! the same data, read-only (GET only). Two things a viewer does not see: a
//! receiver URL's path and query (Slack, Discord and Teams hooks carry their token
//! there), reduced to `scheme://host[:port]/…`, and a subscription's template (which
//! may embed credentials of its receiver).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    allow::allow_only,
    auth::AuthUser,
    state::AppState,
    webhooks::{dead_letters, deliveries, dto::Webhook, ledger, lookup::find, stats},
};
use crate::{
    auth::Role,
    db::subscriptions,
    error::{AppError, ErrorBody},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let get = |path: &'static str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(allow_only("GET"))
    };
    cfg.service(get("/api/v1/console/webhooks", web::get().to(list)))
        .service(get("/api/v1/console/stats", web::get().to(all_stats)))
        .service(get("/api/v1/console/webhooks/{uuid}", web::get().to(one)))
        .service(get(
            "/api/v1/console/webhooks/{uuid}/stats",
            web::get().to(subscription_stats),
        ))
        .service(get(
            "/api/v1/console/webhooks/{uuid}/deliveries",
            web::get().to(delivery_log),
        ))
        .service(get(
            "/api/v1/console/webhooks/{uuid}/dead-letters",
            web::get().to(dead_letter_list),
        ))
        .service(get(
            "/api/v1/console/webhooks/{uuid}/ledger",
            web::get().to(subscription_ledger),
        ));
}

/// What `user` may see of a subscription.
fn shown_to(user: &AuthUser, mut webhook: Webhook) -> Webhook {
    if user.role != Role::Admin {
        webhook.url = url_origin(&webhook.url);
        webhook.template = None;
    }
    webhook
}

/// `https://hooks.example.com/services/T0/B0/XXXX` → `https://hooks.example.com/…`.
fn url_origin(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => {
            let origin = url.origin().ascii_serialization();
            let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if bare {
                format!("{origin}/")
            } else {
                format!("{origin}/…")
            }
        }
        Err(_) => "…".to_owned(),
    }
}

/// Every subscription, oldest first, as the signed-in user may see it.
#[utoipa::path(
    get,
    path = "/api/v1/console/webhooks",
    tag = "console",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every subscription (for viewers: URL path and template withheld)", body = [Webhook]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub async fn list(user: AuthUser, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let rows = subscriptions::list_all(&state.db).await?;
    let shown: Vec<Webhook> = rows
        .iter()
        .map(|row| shown_to(&user, Webhook::from(row)))
        .collect();
    Ok(HttpResponse::Ok().json(shown))
}

/// One subscription, as the signed-in user may see it.
#[utoipa::path(
    get,
    path = "/api/v1/console/webhooks/{uuid}",
    tag = "console",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    responses(
        (status = 200, description = "The subscription (for viewers: URL path and template withheld)", body = Webhook),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    )
)]
pub async fn one(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, &path).await?;
    Ok(HttpResponse::Ok().json(shown_to(&user, Webhook::from(&row))))
}

/// As `GET /api/v1/webhooks/{uuid}/stats`, for every signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/console/webhooks/{uuid}/stats",
    tag = "console",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID"), stats::StatsParams),
    responses(
        (status = 200, description = "Aggregates per interval", body = stats::Stats),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 422, description = "Invalid window or step", body = ErrorBody),
    )
)]
pub async fn subscription_stats(
    _: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    stats::answer_one(&state, &path, &req).await
}

/// As `GET /api/v1/webhooks/stats`, for every signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/console/stats",
    tag = "console",
    security(("bearer" = [])),
    params(stats::StatsParams),
    responses(
        (status = 200, description = "Aggregates per interval", body = stats::Stats),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Invalid window or step", body = ErrorBody),
    )
)]
pub async fn all_stats(
    _: AuthUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    stats::answer_all(&state, &req).await
}

/// As `GET /api/v1/webhooks/{uuid}/deliveries`, for every signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/console/webhooks/{uuid}/deliveries",
    tag = "console",
    security(("bearer" = [])),
    params(
        ("uuid" = String, Path, description = "Subscription UUID"),
        crate::api::query::Page,
        ("outcome" = Option<deliveries::Outcome>, Query, nullable = false, description = "Only successful or only failed attempts"),
    ),
    responses(
        (status = 200, description = "One page of attempts", body = super::webhooks::dto::DeliveryPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    )
)]
pub async fn delivery_log(
    _: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    deliveries::answer(&state, &path, &req).await
}

/// As `GET /api/v1/webhooks/{uuid}/dead-letters`, for every signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/console/webhooks/{uuid}/dead-letters",
    tag = "console",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID"), crate::api::query::Page),
    responses(
        (status = 200, description = "One page of dead letters", body = super::webhooks::dto::DeadLetterPage),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
    )
)]
pub async fn dead_letter_list(
    _: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    dead_letters::answer(&state, &path, &req).await
}

#[cfg(test)]
mod tests {
    use super::url_origin;

    #[test]
    fn a_viewer_sees_where_not_how() {
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            url_origin("http://10.0.0.5:8080/hook?token=abc"),
            "http://10.0.0.5:8080/…"
        );
        assert_eq!(
            url_origin("https://siem.example.org/"),
            "https://siem.example.org/"
        );
        assert_eq!(url_origin("not a url"), "…");
    }
}

/// As `GET /api/v1/webhooks/{uuid}/ledger`, for every signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/console/webhooks/{uuid}/ledger",
    tag = "console",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID")),
    responses(
        (status = 200, description = "The totals and each worker's share", body = ledger::Ledger),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    )
)]
pub async fn subscription_ledger(
    _: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    ledger::answer(&state, &path).await
}
