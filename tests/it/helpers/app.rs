//! The admin API on 127.0.0.1:0 over a fresh database, with an optional private
//! nats-server, and a reqwest client to talk to it.

use std::{net::TcpListener, sync::Arc};

use actix_web::dev::ServerHandle;
use decnet_webhook::{
    auth::{hash_password, JwtKeys, Role},
    bus::Bus,
    config::Settings,
    db,
    startup::{build_api, Shared},
};
use reqwest::{header::HeaderMap, Method};
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};

use super::{NatsServer, TestDb};

/// The key the test app signs tokens with (tests forge and expire tokens with it).
pub const TEST_JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef-0123456789";

#[derive(Default)]
pub struct AppOptions {
    /// Start a private nats-server and connect the bus to it; otherwise the bus is off.
    pub nats: bool,
    /// Extra `Settings::from_pairs` entries (`webhook_allow_private`, …); they win.
    pub settings: Vec<(String, String)>,
}

impl AppOptions {
    pub fn with_nats() -> Self {
        Self {
            nats: true,
            ..Self::default()
        }
    }

    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_owned(), value.to_owned()));
        self
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub nats: Option<NatsServer>,
    pub client: reqwest::Client,
    handle: ServerHandle,
    _test_db: TestDb,
}

/// A response read whole: status, headers and body text.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl ApiResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// The `detail` of an error body.
    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no string detail in {}", self.text))
            .to_owned()
    }
}

impl TestApp {
    pub async fn spawn(options: AppOptions) -> Self {
        super::use_built_sandbox();
        let test_db = TestDb::new().await;
        let nats = options.nats.then(NatsServer::start);
        let mut pairs: Vec<(String, String)> = vec![
            ("database_url".into(), test_db.url.clone()),
            ("jwt_secret".into(), TEST_JWT_SECRET.into()),
            ("bus_enabled".into(), options.nats.to_string()),
            ("webhook_bus_reconnect_secs".into(), "1".into()),
        ];
        if let Some(n) = &nats {
            pairs.push(("nats_url".into(), n.url()));
        }
        // A `database_url` setting shares another harness's database (e.g. a worker's).
        let shared_db = options
            .settings
            .iter()
            .find(|(k, _)| k == "database_url")
            .map(|(_, v)| v.clone());
        pairs.extend(options.settings);
        let settings = Arc::new(Settings::from_pairs(pairs).expect("test settings are valid"));
        let db = match shared_db {
            Some(url) => db::connect_and_migrate(&url)
                .await
                .expect("shared database connects"),
            None => test_db.connect().await,
        };
        let bus = Bus::connect(&settings).await;
        let jwt = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), settings.jwt_exp_minutes);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let shared = Shared::from_settings(&settings);
        let api = build_api(settings.clone(), db.clone(), bus, jwt, shared, listener)
            .expect("API builds");
        let handle = api.server.handle();
        actix_rt::spawn(api.server);
        Self {
            address: format!("http://127.0.0.1:{}", api.port),
            port: api.port,
            db,
            settings,
            nats,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            handle,
            _test_db: test_db,
        }
    }

    pub async fn spawn_default() -> Self {
        Self::spawn(AppOptions::default()).await
    }

    /// Create a user directly in the database; returns the password.
    pub async fn create_user(&self, name: &str, role: Role) -> String {
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let hash = hash_password(&password).expect("hash");
        db::users::insert(&self.db, name, hash, role.as_str())
            .await
            .expect("insert user");
        password
    }

    pub async fn login(&self, name: &str, password: &str) -> String {
        let resp = self
            .post(
                "/api/v1/auth/login",
                None,
                &json!({"username": name, "password": password}),
            )
            .await;
        assert_eq!(resp.status, 200, "login of {name}: {}", resp.text);
        resp.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A new admin user's token.
    pub async fn admin_token(&self) -> String {
        self.token_for(Role::Admin).await
    }

    /// A new viewer user's token.
    pub async fn viewer_token(&self) -> String {
        self.token_for(Role::Viewer).await
    }

    async fn token_for(&self, role: Role) -> String {
        let name = format!("{}-{}", role.as_str(), uuid::Uuid::new_v4().simple());
        let password = self.create_user(&name, role).await;
        self.login(&name, &password).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> ApiResponse {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> ApiResponse {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> ApiResponse {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> ApiResponse {
        self.send(Method::DELETE, path, token, None).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> ApiResponse {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send_request(req, token).await
    }

    /// Send a raw body (for malformed JSON and size limits).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> ApiResponse {
        let req = self
            .client
            .request(method, format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body);
        self.send_request(req, token).await
    }

    async fn send_request(
        &self,
        mut req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> ApiResponse {
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

    /// Create a subscription as `token` and return its JSON (asserting 201).
    pub async fn create_webhook(&self, token: &str, body: &Value) -> Value {
        let resp = self.post("/api/v1/webhooks/", Some(token), body).await;
        assert_eq!(resp.status, 201, "create: {}", resp.text);
        resp.json()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent at once; nothing needs to wait for it.
        drop(self.handle.stop(false));
    }
}
