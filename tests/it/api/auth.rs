//! `POST /api/v1/auth/login`.

use decnet_webhook::auth::{JwtKeys, Role, AUDIENCE, ISSUER};
use serde_json::json;

use crate::helpers::{app::TEST_JWT_SECRET, TestApp};

#[actix_rt::test]
async fn login_issues_a_verified_access_token() {
    let app = TestApp::spawn_default().await;
    let password = app.create_user("alice", Role::Admin).await;
    let resp = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "alice", "password": password}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let body = resp.json();
    assert_eq!(body["token_type"], json!("bearer"));
    let token = body["access_token"].as_str().unwrap();
    let claims = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), 60)
        .verify(token)
        .expect("HS256 with the configured key");
    let user = decnet_webhook::db::users::find_by_username(&app.db, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.sub, user.uuid);
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        (ISSUER, AUDIENCE)
    );
    assert_eq!(claims.typ, "access");
    assert!(claims.exp > claims.iat);
    assert_eq!(app.get("/api/v1/webhooks/", Some(token)).await.status, 200);
}

#[actix_rt::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let app = TestApp::spawn_default().await;
    app.create_user("bob", Role::Admin).await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "nobody", "password": "whatever-password"}),
        )
        .await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "bob", "password": "whatever-password"}),
        )
        .await;
    assert_eq!(unknown.status, 401, "{}", unknown.text);
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert_eq!(unknown.text, wrong.text);
    assert!(!unknown.detail().is_empty());
    assert_eq!(
        unknown.headers.get("www-authenticate"),
        wrong.headers.get("www-authenticate")
    );
}

#[actix_rt::test]
async fn login_bodies_are_validated() {
    let app = TestApp::spawn_default().await;
    for (body, field) in [
        (json!({"username": "a"}), "password"),
        (json!({"username": 1, "password": "p"}), "username"),
        (
            json!({"username": "a", "password": "p", "extra": 1}),
            "extra",
        ),
    ] {
        let resp = app.post("/api/v1/auth/login", None, &body).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.text);
        assert!(resp.detail().contains(field), "{body}: {}", resp.text);
    }
}
