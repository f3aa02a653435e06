//! Templates that cannot fit, against the built `decnet serve` over real HTTP: each
//! is refused on save, the process survives them with its memory (read from /proc)
//! where it was, and rows stored before the limits existed cost nothing at start.

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    process::{children, rss_mib, Decnet},
    templates, NatsServer, TestDb, TestReceiver, WAIT,
};

/// What the whole service may grow by while it refuses every attack (before the
/// limits: 477 MiB for the first, an aborted process for the second).
const GROWTH_MIB: u64 = 64;
const MEMORY_MIB: &str = "64";
const TIMEOUT_MS: &str = "3000";
const PASSWORD: &str = "a-long-enough-admin-password";

fn env(nats: &NatsServer, db: &TestDb, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("DECNET_DATABASE_URL", db.url.clone()),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
        (
            "DECNET_JWT_SECRET",
            "a-test-jwt-secret-of-more-than-32-bytes".into(),
        ),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("DECNET_WEBHOOK_TEMPLATE_MEMORY_MIB", MEMORY_MIB.into()),
        ("DECNET_WEBHOOK_TEMPLATE_TIMEOUT_MS", TIMEOUT_MS.into()),
    ]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn api_up(http: &reqwest::Client, base: &str) {
    eventually(WAIT, "the API", || async {
        let resp = http.get(format!("{base}/healthz")).send().await.ok()?;
        resp.status().is_success().then_some(())
    })
    .await;
}

async fn login(http: &reqwest::Client, base: &str) -> String {
    let resp: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"].as_str().expect("a token").to_owned()
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    url: &str,
    template: &str,
) -> (u16, Value) {
    let resp = http
        .post(format!("{base}/api/v1/webhooks/"))
        .bearer_auth(token)
        .json(&json!({
            "name": name,
            "url": url,
            "topic_patterns": ["attacker.>"],
            "shape": "template",
            "template": template,
        }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[actix_rt::test]
async fn templates_that_cannot_fit_are_refused_on_save_and_cost_the_service_nothing() {
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = env(&nats, &test_db, port);
    Decnet::add_user(&env, dir.path(), "admin", "admin", PASSWORD);
    let mut serve = Decnet::spawn(&["serve"], &env, dir.path());
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    api_up(&http, &base).await;
    serve.wait_log("subscriptions loaded").await;
    let token = login(&http, &base).await;
    let rx = TestReceiver::start();
    let before = rss_mib(serve.pid());

    let attacks = [
        ("constant-fold", templates::constant_fold(), "memory"),
        ("process-killer", templates::process_killer(), "memory"),
        ("doubling", templates::doubling(), "memory"),
        ("endless", templates::endless(), "time"),
    ];
    for (name, template, limit) in &attacks {
        let (status, body) = create(&http, &base, &token, name, &rx.url(), template).await;
        assert_eq!(status, 422, "{name}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        let expected = match *limit {
            "memory" => format!("template: template needed more than {MEMORY_MIB} MiB"),
            _ => format!("template: template took longer than {TIMEOUT_MS} ms"),
        };
        assert!(detail.starts_with(&expected), "{name}: {detail}");
        serve.assert_running();
        let rss = rss_mib(serve.pid());
        assert!(
            rss < before + GROWTH_MIB,
            "{name}: the service grew from {before} to {rss} MiB"
        );
    }

    // The sandboxes that were stopped are replaced: a good template saves and its
    // events are delivered.
    let (status, body) = create(&http, &base, &token, "good", &rx.url(), templates::GOOD).await;
    assert_eq!(status, 201, "{body}");
    let client = nats.client().await;
    eventually(WAIT, "a delivery of the good template", || async {
        client
            .publish("attacker.observed", r#"{"id":"g-1","payload":{}}"#.into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        (rx.count() >= 1).then_some(())
    })
    .await;
    assert_eq!(
        rx.requests()[0].json(),
        json!({"id": "g-1", "topic": "attacker.observed"})
    );
    // At most the sandbox processes run beside it, and each is bounded.
    assert!(children(serve.pid()).len() <= decnet_webhook::shape::sandbox::PROCESSES);

    // Rows stored before the limits existed: a restart compiles none of them in
    // the service (it held 477 MiB again after a restart).
    serve.signal(Signal::SIGTERM);
    assert_eq!(serve.exit_code().await, Some(0), "{}", serve.log());
    let db = test_db.connect().await;
    for (name, template, _) in &attacks {
        let mut row = decnet_webhook::db::subscriptions::new_row(
            &format!("stored-{name}"),
            &rx.url(),
            crate::helpers::worker::SECRET,
            &["attacker.>".to_owned()],
            true,
        );
        row.shape = sea_orm::Set("template".into());
        row.template = sea_orm::Set(Some(template.clone()));
        decnet_webhook::db::subscriptions::insert(&db, row)
            .await
            .unwrap();
    }
    let serve = Decnet::spawn(&["serve"], &env, dir.path());
    api_up(&http, &base).await;
    serve.wait_log("subscriptions loaded").await;
    let rss = rss_mib(serve.pid());
    assert!(
        rss < before + GROWTH_MIB,
        "after a restart the service holds {rss} MiB (it started at {before})"
    );
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
}
