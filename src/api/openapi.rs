//! The OpenAPI 3 document, served at `GET /api/v1/openapi.json`.

use actix_web::{web, HttpResponse};
use utoipa::{
    openapi::{
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder,
    },
    Modify, OpenApi,
};

use super::{allow::allow_only, auth, console, first_run, health, webhooks};
use crate::error::ErrorBody;

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "decnet-webhook",
        description = "Admin API of the DECNET webhook egress: subscribe HTTP endpoints to bus subject patterns."
    ),
    paths(
        health::healthz,
        openapi_json,
        auth::login,
        auth::logout,
        first_run::first_run,
        webhooks::list,
        webhooks::create,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::secret::rotate_secret,
        webhooks::ping::test_ping,
        webhooks::dead_letters::list_dead_letters,
        webhooks::replay::replay,
        webhooks::deliveries::list_deliveries,
        webhooks::filter_check::filter_check,
        webhooks::ledger::ledger,
        webhooks::stats::subscription_stats,
        webhooks::stats::all_stats,
        webhooks::presets::list_presets,
        console::list,
        console::one,
        console::subscription_stats,
        console::all_stats,
        console::delivery_log,
        console::dead_letter_list,
        console::subscription_ledger,
    ),
    // Schemas named only by tuple-style parameters are not collected on their own.
    components(schemas(ErrorBody, webhooks::deliveries::Outcome)),
    modifiers(&BearerAuth, &EdgeAnswers),
    tags(
        (name = "auth", description = "Access tokens"),
        (name = "webhooks", description = "Subscriptions (admins only)"),
        (name = "console", description = "What the web page shows, read-only, for every signed-in user"),
        (name = "health", description = "Liveness and the API description"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the webhook routes name in their `security`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The answers every route can give before its handler runs, named on each
/// operation they apply to: 421 for a `Host` outside `DECNET_API_ALLOWED_HOSTS`
/// (every route but `/healthz`), and for a body, 415 when it is not declared JSON and
/// 408 when it does not arrive in time.
struct EdgeAnswers;

impl Modify for EdgeAnswers {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                if path != "/healthz" {
                    answer(
                        operation,
                        421,
                        "Host is not one DECNET_API_ALLOWED_HOSTS lists",
                    );
                }
                if operation.request_body.is_some() {
                    answer(operation, 415, "Body not declared as application/json");
                    answer(
                        operation,
                        408,
                        "Body did not arrive within the request timeout",
                    );
                }
            }
        }
    }
}

fn answer(operation: &mut Operation, status: u16, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert(response.into());
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Built once; the document cannot change while the process runs.
    let document = web::Data::new(ApiDoc::openapi());
    cfg.app_data(document).service(
        web::resource(OPENAPI_PATH)
            .route(web::get().to(openapi_json))
            .default_service(allow_only("GET")),
    );
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json(document: web::Data<OpenApiDoc>) -> HttpResponse {
    HttpResponse::Ok().json(document.get_ref())
}
