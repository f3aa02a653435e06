//! The web UI: its assets and headers, and the whole page in headless
//! Chromium against the real `decnet` binary.

mod browser;
mod console;

use std::path::{Path, PathBuf};

use chrono::{SubsecRound, Utc};
use fantoccini::Locator;
use serde_json::{json, Value};

use crate::helpers::{
    eventually, process::Decnet, AppOptions, NatsServer, Reply, TestApp, TestDb, TestReceiver, WAIT,
};
use browser::Browser;
use decnet_webhook::db::subscriptions;

// ------------------------------------------------------------------ assets

#[actix_web::test]
async fn page_and_assets_are_served_with_strict_headers() {
    let app = TestApp::spawn(AppOptions::default()).await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let resp = app.get(path, None).await;
        assert_eq!(resp.status, 200, "{path}");
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(!csp.contains("unsafe-"), "{path}: CSP {csp:?}");

        // Unchanged since the last fetch: a 304 without a body.
        let etag = header("etag");
        let again = app
            .client
            .get(format!("{}{path}", app.address))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.expect("body").is_empty());
    }

    // The CSP forbids inline code, so the page must carry none.
    let html = app.get("/", None).await.text;
    let lower = html.to_ascii_lowercase();
    assert_eq!(
        lower.matches("<script").count(),
        lower.matches("<script src=").count(),
        "inline <script> in the page"
    );
    assert!(
        !lower.contains(" style="),
        "inline style attribute in the page"
    );
    assert!(!lower.contains("<style"), "inline <style> in the page");
    assert!(
        !lower.contains(" onclick="),
        "inline event handler in the page"
    );

    // Other methods are the API's 405, and the API keeps its JSON 404.
    let post = app.post("/", None, &json!({})).await;
    assert_eq!(post.status, 405);
    let missing = app.get("/ui/nope.js", None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["detail"].is_string());
}

// ------------------------------------------------------------------ the real binary

/// `target/`, found from the binary under test (`target/<profile>/decnet`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_decnet"))
        .ancestors()
        .nth(2)
        .expect("the binary lives in target/<profile>/")
        .to_owned()
}

async fn wait_healthy(base: &str, decnet: &Decnet) {
    let http = reqwest::Client::new();
    eventually(WAIT, "decnet api to answer /healthz", || async {
        let ok = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        ok.then_some(())
    })
    .await;
    assert!(!decnet.log().contains("panicked"), "{}", decnet.log());
}

async fn api_login(base: &str, username: &str, password: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login request");
    assert_eq!(resp.status(), 200, "API login of {username}");
    let body: Value = resp.json().await.expect("login JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn api_create(base: &str, token: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/webhooks/"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create request");
    let status = resp.status();
    let text = resp.text().await.expect("create body");
    assert_eq!(status, 201, "API create: {text}");
    serde_json::from_str(&text).expect("create JSON")
}

fn row(name: &str) -> String {
    format!("tr[data-testid=\"webhook-row\"][data-name=\"{name}\"]")
}

const COUNTS: &str = "[data-testid=counts]";

#[actix_web::test]
async fn webhooks_page_in_a_real_browser() {
    let test_db = TestDb::new().await;
    let nats = NatsServer::start();
    let receiver = TestReceiver::start();
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let base = format!("http://127.0.0.1:{api_port}");
    let mut env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        (
            "DECNET_JWT_SECRET",
            "ui-test-jwt-secret-0123456789abcdef-0123456789".to_owned(),
        ),
        ("DECNET_API_BIND", format!("127.0.0.1:{api_port}")),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
    ];
    let dir = tempfile::tempdir().expect("working directory");
    Decnet::add_user(&env, dir.path(), "alice", "admin", "alice-password-1");
    Decnet::add_user(&env, dir.path(), "victor", "viewer", "victor-password-1");
    let mut decnet = Decnet::spawn(&["api"], &env, dir.path());
    wait_healthy(&base, &decnet).await;
    let db = test_db.connect().await;

    let artifacts = target_dir();
    let b = Browser::launch(&artifacts).await;

    // --- Sign in: a wrong password is refused on the form, the right one lands on the page.
    b.goto(&format!("{base}/")).await;
    b.visible("[data-testid=login-form]").await;
    b.fill("[data-testid=login-username]", "alice").await;
    b.fill("[data-testid=login-password]", "not-her-password")
        .await;
    b.click("[data-testid=login-submit]").await;
    b.text_is("[data-testid=login-message]", "Wrong username or password.")
        .await;
    b.fill("[data-testid=login-password]", "alice-password-1")
        .await;
    b.click("[data-testid=login-submit]").await;
    b.visible("[data-testid=webhooks-view]").await;
    b.text_is(
        COUNTS,
        "0 CONFIGURED · 0 ENABLED · 0 TRIPPED · 0 FAILING · 0 INSECURE",
    )
    .await;
    b.text_is("[data-testid=session-role]", "ADMIN").await;

    // --- Create through the form: the API's validation error shows beside the form,
    // then the secret is shown once.
    b.click("[data-testid=create-button]").await;
    b.visible("[data-testid=editor-dialog]").await;
    b.fill("[data-testid=editor-name]", "siem-primary").await;
    b.fill("[data-testid=editor-url]", &receiver.url()).await;
    b.click("[data-testid=preset-AttackerDetail]").await;
    b.fill("[data-testid=editor-patterns]", "attacker..observed")
        .await;
    b.click("[data-testid=editor-submit]").await;
    let error = b
        .text_where(
            "[data-testid=editor-error]",
            "the API's validation error beside the form",
            |t| !t.is_empty(),
        )
        .await;
    assert!(
        b.shows("[data-testid=editor-error]").await,
        "error shown: {error}"
    );
    assert!(b.shows("[data-testid=editor-dialog]").await);
    b.fill(
        "[data-testid=editor-patterns]",
        "system.webhook.circuit_tripped",
    )
    .await;
    b.click("[data-testid=editor-submit]").await;
    b.visible("[data-testid=secret-dialog]").await;
    let secret = b
        .visible("[data-testid=secret-value]")
        .await
        .prop("value")
        .await
        .expect("secret value")
        .unwrap_or_default();
    assert!(secret.len() >= 32, "a generated secret: {secret:?}");
    let dialog_text = b
        .text("[data-testid=secret-dialog]")
        .await
        .expect("dialog text")
        .unwrap_or_default();
    assert!(
        dialog_text.contains("will not be shown again"),
        "{dialog_text}"
    );
    b.click("[data-testid=secret-copy]").await;
    b.text_where(
        "[data-testid=secret-copied]",
        "the copy button to answer",
        |t| !t.is_empty(),
    )
    .await;
    b.click("[data-testid=secret-done]").await;
    b.gone("[data-testid=secret-dialog]").await;
    b.visible(&row("siem-primary")).await;
    b.text_is(
        COUNTS,
        "1 CONFIGURED · 1 ENABLED · 0 TRIPPED · 0 FAILING · 1 INSECURE",
    )
    .await;
    b.visible(&format!("{} [data-testid=chip-http]", row("siem-primary")))
        .await;
    let stored = subscriptions::find_by_name(&db, "siem-primary")
        .await
        .expect("query")
        .expect("created through the form");
    assert_eq!(
        stored.patterns(),
        ["attacker.>", "system.webhook.circuit_tripped"]
    );
    assert_eq!(stored.secret, secret);

    // --- Two more, through the API; one of them then trips in the database.
    let token = api_login(&base, "alice", "alice-password-1").await;
    // Port 9 (discard) on loopback: `decnet api` runs no worker, so nothing is ever sent there.
    let soar = api_create(
        &base,
        &token,
        json!({"name": "soar-playbooks", "url": "https://127.0.0.1:9/decnet/events",
               "simple_events": ["DeckyStatus", "SystemStatus"]}),
    )
    .await;
    let chat = api_create(
        &base,
        &token,
        json!({"name": "chat-alerts", "url": "https://127.0.0.1:9/chat/hook",
               "simple_events": ["AttackerDetail"], "topic_patterns": ["decky.*.state"]}),
    )
    .await;
    let soar_uuid = soar["uuid"].as_str().expect("uuid");
    let chat_uuid = chat["uuid"].as_str().expect("uuid");
    let now = Utc::now().trunc_subsecs(0);
    subscriptions::record_webhook_success(&db, chat_uuid, now)
        .await
        .expect("record success");
    let last_error = "connect error: Connection refused (os error 111)";
    for _ in 0..5 {
        subscriptions::record_webhook_failure(&db, soar_uuid, now, last_error)
            .await
            .expect("record failure");
    }
    subscriptions::trip_webhook_circuit(&db, soar_uuid, now)
        .await
        .expect("trip");
    let ts = now.format("%Y-%m-%d %H:%M").to_string();

    // The page notices on its own refresh: no reload.
    b.text_is(
        COUNTS,
        "3 CONFIGURED · 2 ENABLED · 1 TRIPPED · 1 FAILING · 1 INSECURE",
    )
    .await;
    let tripped_chip = format!("{} [data-testid=chip-tripped]", row("soar-playbooks"));
    let chip = b.visible(&tripped_chip).await;
    assert_eq!(
        chip.text().await.expect("chip text"),
        format!("TRIPPED · {ts}")
    );
    assert_eq!(
        chip.attr("title").await.expect("title").as_deref(),
        Some(format!("Circuit tripped at {ts}. Re-enable via Edit to reset.").as_str())
    );
    let fail = b
        .visible(&format!(
            "{} [data-testid=chip-fail]",
            row("soar-playbooks")
        ))
        .await;
    assert_eq!(fail.text().await.expect("fail text"), "FAIL · 5");
    assert_eq!(
        fail.attr("title").await.expect("title").as_deref(),
        Some(last_error)
    );
    b.visible(&format!(
        "{} [data-testid=chip-disabled]",
        row("soar-playbooks")
    ))
    .await;
    assert!(
        !b.shows(&format!(
            "{} [data-testid=chip-http]",
            row("soar-playbooks")
        ))
        .await
    );
    b.screenshot(&artifacts.join("webhooks-page.png")).await;
    // Refresh the committed copy only when asked, so test runs leave the tree clean.
    if std::env::var_os("DECNET_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).expect("docs/");
        std::fs::copy(
            artifacts.join("webhooks-page.png"),
            docs.join("webhooks-page.png"),
        )
        .expect("copy the screenshot into docs/");
    }

    // --- Re-enable through Edit: the trip and the failures clear.
    b.click(&format!(
        "{} [data-testid=edit-button]",
        row("soar-playbooks")
    ))
    .await;
    b.visible("[data-testid=editor-dialog]").await;
    b.visible("[data-testid=editor-trip-note]").await;
    let enabled = b.visible("[data-testid=editor-enabled]").await;
    assert!(!enabled.is_selected().await.expect("switch state"));
    enabled.click().await.expect("switch on");
    b.click("[data-testid=editor-submit]").await;
    b.gone("[data-testid=editor-dialog]").await;
    b.text_is(
        COUNTS,
        "3 CONFIGURED · 3 ENABLED · 0 TRIPPED · 0 FAILING · 1 INSECURE",
    )
    .await;
    b.gone(&tripped_chip).await;
    b.visible(&format!(
        "{} [data-testid=chip-enabled]",
        row("soar-playbooks")
    ))
    .await;
    let row_after = subscriptions::get(&db, soar_uuid)
        .await
        .expect("query")
        .expect("still there");
    assert!(row_after.enabled);
    assert_eq!(row_after.auto_disabled_at, None);
    assert_eq!(row_after.consecutive_failures, 0);

    // --- Delivery options through Edit: a broken template is refused beside the form
    // with its line; the fixed one is stored with the other options and shown again.
    let edit_soar = format!("{} [data-testid=edit-button]", row("soar-playbooks"));
    b.click(&edit_soar).await;
    b.visible("[data-testid=editor-dialog]").await;
    assert!(!b.shows("[data-testid=editor-template]").await);
    b.click("[data-testid=editor-ordered]").await;
    b.fill("[data-testid=editor-rate-limit]", "2.5").await;
    b.visible("[data-testid=editor-shape]")
        .await
        .select_by_value("template")
        .await
        .expect("choose the template shape");
    b.fill("[data-testid=editor-template]", "{\"id\": {{ id }")
        .await;
    b.click("[data-testid=editor-submit]").await;
    let error = b
        .text_where("[data-testid=editor-error]", "the template error", |t| {
            t.starts_with("template: ")
        })
        .await;
    assert!(error.contains("line 1"), "{error}");
    let template = "{\"id\": {{ id }}, \"ip\": {{ payload.attacker_ip }}}";
    b.fill("[data-testid=editor-template]", template).await;
    b.click("[data-testid=editor-submit]").await;
    b.gone("[data-testid=editor-dialog]").await;
    let with_options = subscriptions::get(&db, soar_uuid)
        .await
        .expect("query")
        .expect("still there");
    assert!(with_options.ordered);
    assert_eq!(with_options.rate_limit_per_sec, Some(2.5));
    assert_eq!(with_options.shape, "template");
    assert_eq!(with_options.template.as_deref(), Some(template));
    assert_eq!(with_options.batch_max, None);
    // The row shows the options it now has.
    for testid in ["chip-ordered", "chip-rate", "chip-shape"] {
        b.visible(&format!("{} [data-testid={testid}]", row("soar-playbooks")))
            .await;
    }
    b.click(&edit_soar).await;
    b.visible("[data-testid=editor-dialog]").await;
    assert!(b
        .visible("[data-testid=editor-ordered]")
        .await
        .is_selected()
        .await
        .expect("checkbox state"));
    let shown = b
        .visible("[data-testid=editor-template]")
        .await
        .prop("value")
        .await
        .expect("template value");
    assert_eq!(shown.as_deref(), Some(template));
    // "Test filter" answers for the sample event before anything is saved.
    b.fill("[data-testid=editor-filter]", "payload.score >= 80")
        .await;
    b.fill(
        "[data-testid=editor-filter-event]",
        r#"{"topic": "attacker.scored", "payload": {"score": 91}}"#,
    )
    .await;
    b.click("[data-testid=editor-filter-test]").await;
    b.text_where("[data-testid=editor-filter-result]", "a match", |t| {
        t.starts_with("Match")
    })
    .await;
    b.fill("[data-testid=editor-filter]", "payload.score >=")
        .await;
    b.click("[data-testid=editor-filter-test]").await;
    b.text_where(
        "[data-testid=editor-filter-result]",
        "the filter error",
        |t| t.starts_with("Invalid filter") && t.contains("line 1"),
    )
    .await;
    b.click("[data-testid=editor-cancel]").await;
    b.gone("[data-testid=editor-dialog]").await;

    // --- Receiver authentication through Edit: a bearer token and a static header are
    // stored (the token sealed away, never shown again); the dialog shows the type and
    // the header's name, with the token field blank.
    b.click(&edit_soar).await;
    b.visible("[data-testid=editor-dialog]").await;
    assert!(!b.shows("[data-testid=editor-auth-token]").await);
    b.visible("[data-testid=editor-auth-type]")
        .await
        .select_by_value("bearer")
        .await
        .expect("choose bearer");
    b.fill("[data-testid=editor-auth-token]", "ui-bearer-token-123")
        .await;
    b.fill("[data-testid=editor-headers]", "X-Tenant: blue")
        .await;
    b.click("[data-testid=editor-submit]").await;
    b.gone("[data-testid=editor-dialog]").await;
    let with_auth = subscriptions::get(&db, soar_uuid)
        .await
        .expect("query")
        .expect("still there");
    let auth = with_auth.auth.expect("auth stored");
    assert!(auth.contains("\"bearer\""), "{auth}");
    assert!(with_auth
        .headers
        .expect("headers stored")
        .contains("X-Tenant"));
    b.click(&edit_soar).await;
    b.visible("[data-testid=editor-dialog]").await;
    let value = |testid: &'static str| {
        let b = &b;
        async move {
            b.visible(&format!("[data-testid={testid}]"))
                .await
                .prop("value")
                .await
                .expect("field value")
        }
    };
    assert_eq!(value("editor-auth-type").await.as_deref(), Some("bearer"));
    assert_eq!(value("editor-auth-token").await.as_deref(), Some(""));
    assert_eq!(value("editor-headers").await.as_deref(), Some("X-Tenant:"));
    b.click("[data-testid=editor-cancel]").await;
    b.gone("[data-testid=editor-dialog]").await;

    // --- Rotate the secret through Edit: confirmed first, then the new secret is shown
    // once; the old one is kept as the previous secret for the window.
    b.click(&format!(
        "{} [data-testid=edit-button]",
        row("siem-primary")
    ))
    .await;
    b.visible("[data-testid=editor-dialog]").await;
    assert!(!b.shows("[data-testid=editor-rotate-confirm]").await);
    b.click("[data-testid=editor-rotate]").await;
    b.visible("[data-testid=editor-rotate-confirm]").await;
    b.click("[data-testid=editor-rotate-confirm-button]").await;
    b.gone("[data-testid=editor-dialog]").await;
    b.visible("[data-testid=secret-dialog]").await;
    b.text_is("[data-testid=secret-title]", "Secret rotated")
        .await;
    let rotated = b
        .visible("[data-testid=secret-value]")
        .await
        .prop("value")
        .await
        .expect("secret value")
        .unwrap_or_default();
    assert!(rotated.len() >= 32, "a generated secret: {rotated:?}");
    assert_ne!(rotated, secret);
    let note = b
        .text_where("[data-testid=secret-note]", "the rotation window", |t| {
            t.contains("old secret keeps signing")
        })
        .await;
    assert!(note.ends_with("UTC."), "{note}");
    b.click("[data-testid=secret-done]").await;
    b.gone("[data-testid=secret-dialog]").await;
    let after_rotation = subscriptions::find_by_name(&db, "siem-primary")
        .await
        .expect("query")
        .expect("still there");
    assert_eq!(after_rotation.secret, rotated);
    assert_eq!(
        after_rotation.previous_secret.as_deref(),
        Some(secret.as_str())
    );
    assert!(after_rotation.previous_secret_expires_at.is_some());
    // While the old secret still signs, the row says so.
    b.visible(&format!(
        "{} [data-testid=chip-rotating]",
        row("siem-primary")
    ))
    .await;

    // --- FIRE: a test ping reaches the receiver; the row shows what happened.
    let fire_result = format!("{} [data-testid=fire-result]", row("siem-primary"));
    b.click(&format!(
        "{} [data-testid=fire-button]",
        row("siem-primary")
    ))
    .await;
    b.text_is(&fire_result, "DELIVERED · 200").await;
    let requests = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        requests[0].header("x-decnet-event-topic"),
        Some("test.ping")
    );
    receiver.set_default(Reply::Status(500));
    b.click(&format!(
        "{} [data-testid=fire-button]",
        row("siem-primary")
    ))
    .await;
    let failed = b
        .text_where(&fire_result, "a failed test ping", |t| {
            t.starts_with("FAILED · 500")
        })
        .await;
    assert!(failed.starts_with("FAILED · 500"), "{failed}");

    // --- A destination through Edit: choosing PagerDuty shows its fields only; the
    // routing key is stored, never shown again, and kept when left blank.
    let edit_chat = format!("{} [data-testid=edit-button]", row("chat-alerts"));
    b.click(&edit_chat).await;
    b.visible("[data-testid=editor-dialog]").await;
    assert!(!b.shows("[data-testid=editor-destination]").await);
    b.visible("[data-testid=editor-shape]")
        .await
        .select_by_value("pagerduty")
        .await
        .expect("choose the pagerduty shape");
    b.visible("[data-testid=editor-dest-routing-key]").await;
    assert!(!b.shows("[data-testid=editor-dest-index]").await);
    assert!(!b.shows("[data-testid=editor-dest-dcr]").await);
    b.fill(
        "[data-testid=editor-dest-routing-key]",
        "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y12",
    )
    .await;
    b.visible("[data-testid=editor-dest-severity]")
        .await
        .select_by_value("error")
        .await
        .expect("choose a minimum severity");
    b.click("[data-testid=editor-submit]").await;
    b.gone("[data-testid=editor-dialog]").await;
    let paged = subscriptions::find_by_name(&db, "chat-alerts")
        .await
        .expect("query")
        .expect("still there");
    assert_eq!(paged.shape, "pagerduty");
    assert_eq!(paged.destination, Some(json!({"min_severity": "error"})));
    assert!(paged.destination_secret.is_some());
    b.click(&edit_chat).await;
    b.visible("[data-testid=editor-dialog]").await;
    let key = b.visible("[data-testid=editor-dest-routing-key]").await;
    assert_eq!(key.prop("value").await.expect("value").as_deref(), Some(""));
    assert_eq!(
        key.attr("placeholder")
            .await
            .expect("placeholder")
            .as_deref(),
        Some("stored; blank keeps it")
    );
    // Splunk's fields replace PagerDuty's.
    b.visible("[data-testid=editor-shape]")
        .await
        .select_by_value("splunk_hec")
        .await
        .expect("choose the splunk shape");
    b.fill("[data-testid=editor-dest-index]", "honeypot").await;
    assert!(!b.shows("[data-testid=editor-dest-routing-key]").await);
    b.click("[data-testid=editor-submit]").await;
    b.gone("[data-testid=editor-dialog]").await;
    let hec = subscriptions::find_by_name(&db, "chat-alerts")
        .await
        .expect("query")
        .expect("still there");
    assert_eq!(hec.shape, "splunk_hec");
    assert_eq!(hec.destination, Some(json!({"index": "honeypot"})));
    assert_eq!(
        hec.destination_secret, None,
        "leaving pagerduty drops the key"
    );

    // --- Delete, after a confirmation.
    b.click(&format!(
        "{} [data-testid=delete-button]",
        row("chat-alerts")
    ))
    .await;
    let confirm = b
        .text_where(
            "[data-testid=confirm-text]",
            "the delete confirmation",
            |t| t.contains("chat-alerts"),
        )
        .await;
    assert!(confirm.contains("cannot be undone"), "{confirm}");
    b.click("[data-testid=confirm-delete]").await;
    b.gone(&row("chat-alerts")).await;
    b.text_is(
        COUNTS,
        "2 CONFIGURED · 2 ENABLED · 0 TRIPPED · 0 FAILING · 1 INSECURE",
    )
    .await;
    assert!(subscriptions::get(&db, chat_uuid)
        .await
        .expect("query")
        .is_none());

    // --- The API goes away: the page says so. It comes back with another signing
    // key: the old token is refused and the page asks to sign in again.
    decnet.kill();
    b.text_where("[data-testid=banner]", "the unreachable-API banner", |t| {
        t.contains("Cannot reach the DECNET API")
    })
    .await;
    env[1].1 = "ui-test-another-jwt-secret-abcdef0123456789-01".to_owned();
    let decnet = Decnet::spawn(&["api"], &env, dir.path());
    wait_healthy(&base, &decnet).await;
    b.visible("[data-testid=login-view]").await;
    b.text_is(
        "[data-testid=login-message]",
        "Your session has expired. Sign in again.",
    )
    .await;
    b.gone("[data-testid=banner]").await;

    // --- A viewer: the list, read-only, and nothing that would change anything.
    b.fill("[data-testid=login-username]", "victor").await;
    b.fill("[data-testid=login-password]", "victor-password-1")
        .await;
    b.click("[data-testid=login-submit]").await;
    b.visible("[data-testid=readonly-note]").await;
    b.text_is("[data-testid=session-role]", "VIEWER").await;
    b.visible(&row("siem-primary")).await;
    assert!(!b.shows("[data-testid=create-button]").await);
    for action in ["edit-button", "delete-button", "fire-button"] {
        let found = b
            .client
            .find_all(Locator::Css(&format!("[data-testid={action}]")))
            .await
            .expect("query");
        assert!(found.is_empty(), "a viewer is offered {action}");
    }
    // The API refuses a viewer's create whatever the page shows.
    let viewer_token = api_login(&base, "victor", "victor-password-1").await;
    let refused = reqwest::Client::new()
        .post(format!("{base}/api/v1/webhooks/"))
        .bearer_auth(&viewer_token)
        .json(&json!({"name": "sneaky", "url": receiver.url(), "simple_events": ["SystemStatus"]}))
        .send()
        .await
        .expect("viewer create");
    assert_eq!(refused.status(), 403);

    // --- Sign out: the page asks the API to revoke the session before forgetting it,
    // which ends victor's other sessions too (the token above).
    b.click("[data-testid=sign-out]").await;
    b.visible("[data-testid=login-view]").await;
    b.text_is("[data-testid=login-message]", "Signed out.")
        .await;
    // The page signed out only once the API had answered, so the revocation is done.
    let revoked = reqwest::Client::new()
        .get(format!("{base}/api/v1/webhooks/"))
        .bearer_auth(&viewer_token)
        .send()
        .await
        .expect("request with the revoked token");
    assert_eq!(revoked.status(), 401);

    b.close().await;
    drop(decnet);
}
