//! Logins cannot exhaust the service: password checks run a bounded number at once
//! (503 beyond), failing usernames and addresses back off (429), and a flood of bad
//! logins against the real binary leaves its memory small.

use std::{collections::BTreeMap, net::TcpListener};

use decnet_webhook::auth::Role;
use futures::future::join_all;
use serde_json::json;

use crate::helpers::{
    app::ApiResponse, eventually, process::Decnet, AppOptions, TestApp, TestDb, WAIT,
};

const LOGIN: &str = "/api/v1/auth/login";

async fn login(app: &TestApp, name: &str, password: &str) -> ApiResponse {
    app.post(
        LOGIN,
        None,
        &json!({"username": name, "password": password}),
    )
    .await
}

/// The whole seconds of a `Retry-After`, asserting there is one.
fn retry_after(resp: &ApiResponse) -> u64 {
    resp.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {resp:?}"))
}

fn assert_throttled(resp: &ApiResponse) {
    assert_eq!(resp.status, 429, "{}", resp.text);
    assert!(retry_after(resp) >= 1);
    assert!(
        resp.detail().contains("Too many failed logins"),
        "{}",
        resp.text
    );
}

#[actix_rt::test]
async fn a_failing_username_backs_off_then_its_right_password_works() {
    let app = TestApp::spawn(
        AppOptions::default()
            .setting("api_login_user_failures", "2")
            .setting("api_login_address_failures", "1000")
            .setting("api_login_backoff_secs", "1")
            .setting("api_login_backoff_max_secs", "2"),
    )
    .await;
    let password = app.create_user("alice", Role::Admin).await;
    let bob = app.create_user("bob", Role::Admin).await;
    for _ in 0..2 {
        assert_eq!(login(&app, "alice", "wrong-password").await.status, 401);
    }
    // Locked: even the right password waits, and says for how long.
    assert_throttled(&login(&app, "alice", &password).await);
    // Other usernames from the same address are not held up.
    assert_eq!(login(&app, "bob", &bob).await.status, 200);
    // Once the back-off ends the right password works.
    eventually(WAIT, "alice's login once the back-off ends", || async {
        let resp = login(&app, "alice", &password).await;
        match resp.status {
            200 => Ok(()),
            429 => Err(format!("still backing off: {}", resp.text)),
            other => panic!("login answered {other}: {}", resp.text),
        }
    })
    .await;
    // The success cleared alice's count: two fresh failures before the next lock.
    for _ in 0..2 {
        assert_eq!(login(&app, "alice", "wrong-password").await.status, 401);
    }
    assert_throttled(&login(&app, "alice", "wrong-password").await);
}

#[actix_rt::test]
async fn a_failing_address_backs_off_for_every_username() {
    let app = TestApp::spawn(
        AppOptions::default()
            .setting("api_login_user_failures", "1000")
            .setting("api_login_address_failures", "3")
            .setting("api_login_backoff_secs", "1")
            .setting("api_login_backoff_max_secs", "2"),
    )
    .await;
    let password = app.create_user("alice", Role::Admin).await;
    for name in ["guess-1", "guess-2", "guess-3"] {
        assert_eq!(login(&app, name, "whatever-password").await.status, 401);
    }
    assert_throttled(&login(&app, "guess-4", "whatever-password").await);
    assert_throttled(&login(&app, "alice", &password).await);
    eventually(
        WAIT,
        "alice's login once the address's back-off ends",
        || async {
            let resp = login(&app, "alice", &password).await;
            (resp.status == 200).then_some(())
        },
    )
    .await;
}

#[actix_rt::test]
async fn password_checks_beyond_the_limit_are_refused_with_503() {
    let app = TestApp::spawn(
        AppOptions::default()
            .setting("api_login_concurrency", "1")
            .setting("api_login_user_failures", "1000")
            .setting("api_login_address_failures", "100000"),
    )
    .await;
    app.create_user("alice", Role::Admin).await;
    // A burst of simultaneous logins until one finds the single check slot taken.
    let busy = eventually(WAIT, "a 503 among simultaneous logins", || async {
        let burst = (0..16).map(|_| login(&app, "alice", "wrong-password"));
        let answers = join_all(burst).await;
        for resp in &answers {
            assert!(
                matches!(resp.status, 401 | 503),
                "login answered {}: {}",
                resp.status,
                resp.text
            );
        }
        answers.into_iter().find(|r| r.status == 503)
    })
    .await;
    assert_eq!(retry_after(&busy), 1);
    assert!(
        busy.detail().contains("Too many logins at once"),
        "{}",
        busy.text
    );
}

/// The log without ANSI colour sequences (`ESC [ … m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

const MIB: u64 = 1024 * 1024;

/// `decnet api` on its own database with the user alice, and a client to it.
struct Api {
    decnet: Decnet,
    base: String,
    http: reqwest::Client,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// A login's status, `Retry-After` and JSON body.
type Answer = (u16, Option<String>, serde_json::Value);

impl Api {
    async fn start(settings: &[(&'static str, &str)]) -> Self {
        let db = TestDb::new().await;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env = vec![
            ("DECNET_DATABASE_URL", db.url.clone()),
            (
                "DECNET_JWT_SECRET",
                "login-test-jwt-secret-0123456789abcdef-0123".to_owned(),
            ),
            ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
            ("DECNET_BUS_ENABLED", "false".to_owned()),
        ];
        env.extend(settings.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let dir = tempfile::tempdir().expect("working directory");
        Decnet::add_user(&env, dir.path(), "alice", "admin", "alice-password-1");
        let decnet = Decnet::spawn(&["api"], &env, dir.path());
        let http = reqwest::Client::new();
        eventually(WAIT, "the API", || async {
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        Self {
            decnet,
            base,
            http,
            _db: db,
            _dir: dir,
        }
    }

    async fn login(&self, password: &str) -> Answer {
        let resp = self
            .http
            .post(format!("{}{LOGIN}", self.base))
            .json(&json!({"username": "alice", "password": password}))
            .send()
            .await
            .expect("login request");
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.json().await.expect("a JSON answer");
        (status, retry_after, body)
    }

    /// `n` simultaneous bad logins; how many got each status. Each answer is checked:
    /// a JSON `detail`, and a `Retry-After` on 429 and 503.
    async fn flood(&self, n: usize) -> BTreeMap<u16, usize> {
        let answers = join_all((0..n).map(|_| self.login("wrong-password"))).await;
        let mut counts = BTreeMap::new();
        for (status, retry_after, body) in &answers {
            *counts.entry(*status).or_default() += 1;
            assert!(body["detail"].is_string(), "{status}: {body}");
            match status {
                401 => {}
                429 | 503 => assert!(retry_after.is_some(), "{status} without Retry-After"),
                other => panic!("a bad login answered {other}: {body}"),
            }
        }
        counts
    }

    fn rss(&self) -> u64 {
        self.decnet.status_bytes("VmRSS")
    }
}

/// 256 simultaneous bad logins against `decnet api` with the default limits: before
/// the bound, each ran argon2 (about 19 MiB) at once and the memory stayed taken.
#[actix_rt::test]
async fn a_flood_of_bad_logins_leaves_memory_small_and_the_right_password_works() {
    let api = Api::start(&[
        ("DECNET_API_LOGIN_USER_FAILURES", "5"),
        ("DECNET_API_LOGIN_ADDRESS_FAILURES", "100000"),
        ("DECNET_API_LOGIN_BACKOFF_SECS", "1"),
        ("DECNET_API_LOGIN_BACKOFF_MAX_SECS", "2"),
    ])
    .await;
    let before = api.rss();
    let counts = api.flood(256).await;
    assert!(
        counts.contains_key(&503),
        "no check was turned away: {counts:?}"
    );
    // Every answer is in, so every check has ended.
    let peak = api.decnet.status_bytes("VmHWM");
    let after = api.rss();
    assert!(
        peak < 300 * MIB && after < 300 * MIB,
        "RSS {} MiB before, peak {} MiB, {} MiB after; answers {counts:?}",
        before / MIB,
        peak / MIB,
        after / MIB
    );

    // Every failure was logged, with the username and the client's address (stderr
    // is read on a thread of its own, so it may trail the answers).
    let failed = counts.get(&401).copied().unwrap_or(0);
    let log = eventually(WAIT, "a warning for each failed login", || async {
        let log = without_colours(&api.decnet.log());
        let logged = log.lines().filter(|l| l.contains("failed login")).count();
        if logged == failed {
            Ok(log)
        } else {
            Err(format!("{logged} of {failed} logged"))
        }
    })
    .await;
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("failed login")
            && l.contains("username=\"alice\"")
            && l.contains("peer=127.0.0.1")),
        "{log}"
    );

    // Go on failing until alice backs off; then even her right password waits, until
    // the back-off ends.
    eventually(WAIT, "alice to back off", || async {
        let (status, _, _) = api.login("wrong-password").await;
        (status == 429).then_some(())
    })
    .await;
    let (status, retry_after, _) = api.login("alice-password-1").await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    eventually(
        WAIT,
        "the right password once the back-off ends",
        || async {
            let (status, _, body) = api.login("alice-password-1").await;
            match status {
                200 => Ok(body),
                429 | 503 => Err(format!("{status}: {body}")),
                other => panic!("the right password answered {other}: {body}"),
            }
        },
    )
    .await;
}

/// With many checks allowed at once, what they used is still handed back when they
/// end: glibc would otherwise keep each one's 19 MiB in its arenas.
#[actix_rt::test]
async fn memory_of_finished_password_checks_is_given_back() {
    let api = Api::start(&[
        ("DECNET_API_LOGIN_CONCURRENCY", "16"),
        ("DECNET_API_LOGIN_USER_FAILURES", "1000"),
        ("DECNET_API_LOGIN_ADDRESS_FAILURES", "100000"),
    ])
    .await;
    let before = api.rss();
    let counts = api.flood(64).await;
    let peak = api.decnet.status_bytes("VmHWM");
    let after = api.rss();
    assert!(
        after < before + 64 * MIB,
        "RSS {} MiB before, peak {} MiB, {} MiB after; answers {counts:?}",
        before / MIB,
        peak / MIB,
        after / MIB
    );
}
