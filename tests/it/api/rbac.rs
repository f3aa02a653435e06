//! Every route the OpenAPI document describes under `/api/v1/webhooks` refuses
//! anonymous, forged, expired and stale tokens (401) and non-admins (403). The
//! routes are read from the served document, so a new route cannot be forgotten.

use decnet_webhook::auth::{JwtKeys, Role};
use reqwest::Method;
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use super::valid_webhook;
use crate::helpers::{app::TEST_JWT_SECRET, TestApp};

/// (method, concrete path) of every documented webhook operation.
async fn webhook_operations(app: &TestApp, uuid: &str) -> Vec<(Method, String)> {
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (template, item) in paths {
        if !template.starts_with("/api/v1/webhooks") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            assert!(
                op.get("security").is_some(),
                "{method} {template} does not declare its bearer security"
            );
            ops.push((method, template.replace("{uuid}", uuid)));
        }
    }
    ops
}

fn assert_not_authenticated(what: &str, resp: &crate::helpers::app::ApiResponse) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text);
    assert!(!resp.detail().is_empty(), "{what}");
    assert_eq!(
        resp.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "{what}"
    );
}

#[actix_rt::test]
async fn every_webhook_route_requires_an_admin_token() {
    let app = TestApp::spawn_default().await;
    let admin = app.admin_token().await;
    let viewer = app.viewer_token().await;
    let created = app.create_webhook(&admin, &valid_webhook("guarded")).await;
    let uuid = created["uuid"].as_str().unwrap();

    let forged = JwtKeys::new(b"another-secret-of-at-least-32-bytes!", 60)
        .issue(uuid, Role::Admin, 0)
        .unwrap();
    let admin_claims = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), 60)
        .verify(&admin)
        .expect("the app's own token verifies");
    let expired = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), -1)
        .issue(&admin_claims.sub, Role::Admin, admin_claims.ver)
        .unwrap();

    let ops = webhook_operations(&app, uuid).await;
    let documented: Vec<String> = ops.iter().map(|(m, p)| format!("{m} {p}")).collect();
    for expected in [
        "GET /api/v1/webhooks/".to_owned(),
        "POST /api/v1/webhooks/".to_owned(),
        format!("GET /api/v1/webhooks/{uuid}"),
        format!("PATCH /api/v1/webhooks/{uuid}"),
        format!("DELETE /api/v1/webhooks/{uuid}"),
        format!("POST /api/v1/webhooks/{uuid}/test"),
        format!("POST /api/v1/webhooks/{uuid}/rotate-secret"),
        format!("GET /api/v1/webhooks/{uuid}/dead-letters"),
        format!("POST /api/v1/webhooks/{uuid}/replay"),
        format!("GET /api/v1/webhooks/{uuid}/deliveries"),
        format!("GET /api/v1/webhooks/{uuid}/ledger"),
        "POST /api/v1/webhooks/filter-check".to_owned(),
    ] {
        assert!(
            documented.contains(&expected),
            "{expected} is not documented"
        );
    }

    let body = json!({});
    for (method, path) in &ops {
        let what = format!("{method} {path}");
        let send = |token: Option<String>| {
            let req = app
                .client
                .request(method.clone(), format!("{}{path}", app.address));
            let req = match &token {
                Some(t) => req.header("authorization", t.as_str()),
                None => req,
            }
            .json(&body);
            async move {
                let resp = req.send().await.expect("request");
                crate::helpers::app::ApiResponse {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    text: resp.text().await.unwrap(),
                }
            }
        };
        assert_not_authenticated(&format!("{what} without a token"), &send(None).await);
        for (kind, header) in [
            ("forged", format!("Bearer {forged}")),
            ("expired", format!("Bearer {expired}")),
            ("garbage", "Bearer not.a.token".to_owned()),
            ("empty", "Bearer ".to_owned()),
            ("basic", format!("Basic {admin}")),
        ] {
            let resp = send(Some(header)).await;
            assert_not_authenticated(&format!("{what} with a {kind} token"), &resp);
        }
        let resp = send(Some(format!("Bearer {viewer}"))).await;
        assert_eq!(resp.status, 403, "{what} as a viewer: {}", resp.text);
        assert_eq!(resp.json(), json!({"detail": "Insufficient permissions"}));
    }

    // Nothing a refused request asked for happened.
    let still = app
        .get(&format!("/api/v1/webhooks/{uuid}"), Some(&admin))
        .await;
    assert_eq!(still.status, 200);
    assert_eq!(still.json()["updated_at"], created["updated_at"]);
    let all = app.get("/api/v1/webhooks/", Some(&admin)).await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(1));
}

#[actix_rt::test]
async fn a_token_of_a_deleted_user_is_refused() {
    let app = TestApp::spawn_default().await;
    let password = app.create_user("leaver", Role::Admin).await;
    let token = app.login("leaver", &password).await;
    assert_eq!(app.get("/api/v1/webhooks/", Some(&token)).await.status, 200);
    let user = decnet_webhook::db::users::find_by_username(&app.db, "leaver")
        .await
        .unwrap()
        .unwrap();
    entity::user::Entity::delete_by_id(user.uuid)
        .exec(&app.db)
        .await
        .unwrap();
    let resp = app.get("/api/v1/webhooks/", Some(&token)).await;
    assert_not_authenticated("deleted user", &resp);
}

#[actix_rt::test]
async fn the_stored_role_decides_not_the_token() {
    let app = TestApp::spawn_default().await;
    let password = app.create_user("demoted", Role::Viewer).await;
    let viewer_token = app.login("demoted", &password).await;
    let claims = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), 60)
        .verify(&viewer_token)
        .unwrap();
    assert_eq!(claims.role, Role::Viewer);
    // A token claiming admin for a user stored as viewer still gets 403.
    let claims_admin = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), 60)
        .issue(&claims.sub, Role::Admin, claims.ver)
        .unwrap();
    let resp = app.get("/api/v1/webhooks/", Some(&claims_admin)).await;
    assert_eq!(resp.status, 403, "{}", resp.text);
    let _: Value = resp.json();
}
