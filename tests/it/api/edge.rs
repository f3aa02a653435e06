//! What every answer carries and every request must meet, over real HTTP: answers
//! are neither cached nor sniffed, bodies must be declared as JSON (a page elsewhere
//! can post `text/plain` across origins without asking), and with
//! `DECNET_API_ALLOWED_HOSTS` only the listed hosts are answered (a DNS-rebinding
//! page sends its own name).

use reqwest::{header, Method};
use serde_json::json;

use super::valid_webhook;
use crate::helpers::{app::ApiResponse, AppOptions, TestApp};

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(header::HeaderName, &str)],
    body: &str,
) -> ApiResponse {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request reaches the API");
    ApiResponse {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.expect("response body"),
    }
}

fn assert_private(resp: &ApiResponse, what: &str) {
    assert_eq!(
        resp.headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}: {:?}",
        resp.headers
    );
    assert_eq!(
        resp.headers
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}: {:?}",
        resp.headers
    );
}

#[actix_rt::test]
async fn answers_carrying_tokens_and_secrets_are_not_stored_or_sniffed() {
    let app = TestApp::spawn_default().await;
    let name = "keeper";
    let password = app
        .create_user(name, decnet_webhook::auth::Role::Admin)
        .await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"username": name, "password": password}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_private(&login, "the token");
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let created = app
        .post("/api/v1/webhooks/", Some(&token), &valid_webhook("kept"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_private(&created, "the secret");
    let at = format!(
        "/api/v1/webhooks/{}",
        created.json()["uuid"].as_str().unwrap()
    );
    let rotated = app
        .post(&format!("{at}/rotate-secret"), Some(&token), &json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_private(&rotated, "the rotated secret");
    assert_private(&app.get(&at, Some(&token)).await, "a subscription");
    assert_private(&app.get(&at, None).await, "a 401");
    assert_private(&app.get("/api/v1/nowhere", None).await, "a 404");
    assert_private(&app.get("/healthz", None).await, "the health check");
    // The page's assets keep their revalidated caching; they hold no secret.
    let page = app.get("/", None).await;
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[actix_rt::test]
async fn bodies_not_declared_as_json_are_415() {
    let app = TestApp::spawn_default().await;
    let name = "target";
    let password = app
        .create_user(name, decnet_webhook::auth::Role::Admin)
        .await;
    let credentials = json!({"username": name, "password": password}).to_string();
    // What a cross-origin page may send without a preflight, and no type at all.
    let simple = [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ];
    for content_type in simple {
        let headers: Vec<_> = content_type
            .map(|t| (header::CONTENT_TYPE, t))
            .into_iter()
            .collect();
        let resp = send(
            &app,
            Method::POST,
            "/api/v1/auth/login",
            None,
            &headers,
            &credentials,
        )
        .await;
        assert_eq!(resp.status, 415, "{content_type:?}: {}", resp.text);
        assert_eq!(resp.detail(), "Content-Type must be application/json");
        assert_private(&resp, "a 415");
    }
    let json_utf8 = [(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")];
    let login = send(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        &json_utf8,
        &credentials,
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();

    let text = [(header::CONTENT_TYPE, "text/plain")];
    let body = valid_webhook("posted").to_string();
    let resp = send(
        &app,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        &text,
        &body,
    )
    .await;
    assert_eq!(resp.status, 415, "{}", resp.text);
    assert_eq!(
        app.get("/api/v1/webhooks/", Some(&token)).await.json(),
        json!([])
    );

    let created = app.create_webhook(&token, &valid_webhook("kept")).await;
    let at = format!("/api/v1/webhooks/{}", created["uuid"].as_str().unwrap());
    let resp = send(
        &app,
        Method::PATCH,
        &at,
        Some(&token),
        &text,
        r#"{"enabled":false}"#,
    )
    .await;
    assert_eq!(resp.status, 415, "{}", resp.text);
    let rotate = format!("{at}/rotate-secret");
    let resp = send(&app, Method::POST, &rotate, Some(&token), &text, "{}").await;
    assert_eq!(resp.status, 415, "{}", resp.text);
    assert_eq!(app.get(&at, Some(&token)).await.json()["enabled"], true);
    // A request without a body needs no type: rotate-secret takes an empty one.
    let resp = send(&app, Method::POST, &rotate, Some(&token), &[], "").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[actix_rt::test]
async fn hosts_outside_the_allowed_list_are_421() {
    let app = TestApp::spawn(
        AppOptions::default().setting("api_allowed_hosts", "decnet.example, 127.0.0.1"),
    )
    .await;
    // The test client names 127.0.0.1, which is listed.
    let token = app.admin_token().await;
    let json_type = (header::CONTENT_TYPE, "application/json");
    let login = r#"{"username":"nobody","password":"guess"}"#;
    // A login addressed to `host`.
    let login_at = |host: &'static str| {
        let with_host = [(header::HOST, host), json_type.clone()];
        let app = &app;
        async move {
            send(
                app,
                Method::POST,
                "/api/v1/auth/login",
                None,
                &with_host,
                login,
            )
            .await
        }
    };
    for host in [
        "rebound.example",
        "rebound.example:8000",
        "decnet.example.evil",
        "10.0.0.1",
    ] {
        let resp = login_at(host).await;
        assert_eq!(resp.status, 421, "{host}: {}", resp.text);
        let with_host = [(header::HOST, host)];
        let detail = resp.detail();
        assert!(detail.contains("DECNET_API_ALLOWED_HOSTS"), "{detail}");
        let resp = send(
            &app,
            Method::GET,
            "/api/v1/webhooks/",
            Some(&token),
            &with_host,
            "",
        )
        .await;
        assert_eq!(resp.status, 421, "{host}: {}", resp.text);
        assert_eq!(
            send(&app, Method::GET, "/", None, &with_host, "")
                .await
                .status,
            421
        );
    }
    for host in [
        "decnet.example",
        "DECNET.example:8443",
        "decnet.example.",
        "127.0.0.1:1",
    ] {
        let resp = login_at(host).await;
        assert_eq!(resp.status, 401, "{host}: {}", resp.text);
    }
    // Health checks often name an address: they are answered whatever the host.
    let probe = [(header::HOST, "10.0.0.1:8000")];
    let health = send(&app, Method::GET, "/healthz", None, &probe, "").await;
    assert_eq!(health.status, 200, "{}", health.text);

    // Without the setting every host is answered, as before.
    let open = TestApp::spawn_default().await;
    let with_host = [(header::HOST, "rebound.example"), json_type];
    let resp = send(
        &open,
        Method::POST,
        "/api/v1/auth/login",
        None,
        &with_host,
        login,
    )
    .await;
    assert_eq!(resp.status, 401, "{}", resp.text);
}
