//! Tokens end when their user's standing changes: sign out, a new password, a
//! disabled, deleted or re-roled user (through the real `decnet user` commands), and
//! tokens claiming to come from the future are refused.

use decnet_webhook::auth::{Claims, JwtKeys, Role};
use serde_json::json;

use crate::helpers::{app::TEST_JWT_SECRET, process::Decnet, TestApp};

const WEBHOOKS: &str = "/api/v1/webhooks/";

/// `decnet user ARGS` against the app's database: (exit code, stdout, stderr).
fn decnet_user(app: &TestApp, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("working directory");
    // Logs at warn: stderr is then the command's own error line, if any.
    let env = [
        (
            "DECNET_DATABASE_URL",
            app.settings.database_url.expose().to_owned(),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let mut full = vec!["user"];
    full.extend_from_slice(args);
    let out = Decnet::run(&full, &env, dir.path(), stdin);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_ok(what: &str, (code, stdout, stderr): &(Option<i32>, String, String)) {
    assert_eq!(*code, Some(0), "{what}: {stdout}{stderr}");
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get(WEBHOOKS, Some(token)).await.status
}

async fn login_status(app: &TestApp, name: &str, password: &str) -> u16 {
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"username": name, "password": password}),
    )
    .await
    .status
}

#[actix_rt::test]
async fn logout_revokes_every_session_of_the_user() {
    let app = TestApp::spawn_default().await;
    let password = app.create_user("alice", Role::Admin).await;
    let laptop = app.login("alice", &password).await;
    let phone = app.login("alice", &password).await;
    let bob = app.admin_token().await;

    let resp = app
        .post("/api/v1/auth/logout", Some(&laptop), &json!({}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    assert!(resp.text.is_empty());
    assert_eq!(status(&app, &laptop).await, 401);
    assert_eq!(status(&app, &phone).await, 401);
    // Another user is untouched.
    assert_eq!(status(&app, &bob).await, 200);
    // A revoked token cannot sign out again, nor can nobody.
    let again = app
        .post("/api/v1/auth/logout", Some(&laptop), &json!({}))
        .await;
    assert_eq!(again.status, 401, "{}", again.text);
    let anonymous = app.post("/api/v1/auth/logout", None, &json!({})).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(app.get("/api/v1/auth/logout", Some(&bob)).await.status, 405);
    // Signing in again works.
    let fresh = app.login("alice", &password).await;
    assert_eq!(status(&app, &fresh).await, 200);
}

#[actix_rt::test]
async fn a_password_change_revokes_earlier_tokens() {
    let app = TestApp::spawn_default().await;
    let password = app.create_user("alice", Role::Admin).await;
    let before = app.login("alice", &password).await;
    assert_eq!(status(&app, &before).await, 200);

    let out = decnet_user(
        &app,
        &["passwd", "alice", "--password-stdin"],
        "a brand new password\n",
    );
    assert_ok("passwd", &out);
    assert_eq!(status(&app, &before).await, 401);
    assert_eq!(login_status(&app, "alice", &password).await, 401);
    let after = app.login("alice", "a brand new password").await;
    assert_eq!(status(&app, &after).await, 200);
}

#[actix_rt::test]
async fn disable_enable_role_and_delete_revoke_tokens() {
    let app = TestApp::spawn_default().await;
    app.create_user("root", Role::Admin).await;
    let password = app.create_user("alice", Role::Admin).await;
    let token = app.login("alice", &password).await;

    // Disabled: the token stops working and the right password is refused.
    assert_ok("disable", &decnet_user(&app, &["disable", "alice"], ""));
    assert_eq!(status(&app, &token).await, 401);
    assert_eq!(login_status(&app, "alice", &password).await, 401);
    let (_, listed, _) = decnet_user(&app, &["list"], "");
    assert!(listed.contains("alice\tadmin\t"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("alice\t") && l.ends_with("\tdisabled")),
        "{listed}"
    );

    // Enabled again: a new login works; the old token stays revoked.
    assert_ok("enable", &decnet_user(&app, &["enable", "alice"], ""));
    assert_eq!(status(&app, &token).await, 401);
    let token = app.login("alice", &password).await;
    assert_eq!(status(&app, &token).await, 200);

    // Demoted: the admin token is revoked; a new one is a viewer's.
    assert_ok(
        "role viewer",
        &decnet_user(&app, &["role", "alice", "viewer"], ""),
    );
    assert_eq!(status(&app, &token).await, 401);
    let token = app.login("alice", &password).await;
    assert_eq!(status(&app, &token).await, 403);
    assert_ok(
        "role admin",
        &decnet_user(&app, &["role", "alice", "admin"], ""),
    );
    assert_eq!(status(&app, &token).await, 401);
    let token = app.login("alice", &password).await;
    assert_eq!(status(&app, &token).await, 200);

    // Deleted: gone, and so is its token.
    assert_ok("delete", &decnet_user(&app, &["delete", "alice"], ""));
    assert_eq!(status(&app, &token).await, 401);
    assert_eq!(login_status(&app, "alice", &password).await, 401);
    let (code, _, stderr) = decnet_user(&app, &["delete", "alice"], "");
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim(), "decnet: no user named \"alice\"");
}

#[actix_rt::test]
async fn the_last_enabled_admin_cannot_be_removed() {
    let app = TestApp::spawn_default().await;
    let password = app.create_user("root", Role::Admin).await;
    app.create_user("viewer", Role::Viewer).await;
    let disabled_admin = app.create_user("old-admin", Role::Admin).await;
    assert_ok(
        "disable the other admin",
        &decnet_user(&app, &["disable", "old-admin"], ""),
    );
    let token = app.login("root", &password).await;
    for args in [
        ["disable", "root", ""],
        ["delete", "root", ""],
        ["role", "root", "viewer"],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let (code, stdout, stderr) = decnet_user(&app, &args, "");
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("last enabled admin"), "{args:?}: {stderr}");
    }
    // Nothing changed: root's token still works.
    assert_eq!(status(&app, &token).await, 200);
    // With another enabled admin, root may go.
    assert_ok("enable", &decnet_user(&app, &["enable", "old-admin"], ""));
    assert_ok("delete", &decnet_user(&app, &["delete", "root"], ""));
    assert_eq!(status(&app, &token).await, 401);
    let other = app.login("old-admin", &disabled_admin).await;
    assert_eq!(status(&app, &other).await, 200);
    // Unknown names and roles are one clear line, exit 2.
    for args in [vec!["disable", "nobody"], vec!["role", "nobody", "admin"]] {
        let (code, _, stderr) = decnet_user(&app, &args, "");
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("no user named"), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = decnet_user(&app, &["role", "viewer", "root"], "");
    assert_eq!(code, Some(2), "{stderr}");
}

#[actix_rt::test]
async fn tokens_from_the_future_or_of_an_old_version_are_refused() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let keys = JwtKeys::new(TEST_JWT_SECRET.as_bytes(), 60);
    let claims = keys.verify(&token).expect("the app's own token");
    let now = chrono::Utc::now().timestamp();
    // Re-signed as it is, the token works: the refusals below are for their one change.
    let same = keys.sign(&claims).unwrap();
    assert_eq!(status(&app, &same).await, 200);
    for (what, forged) in [
        (
            "nbf in an hour",
            Claims {
                nbf: now + 3600,
                ..claims.clone()
            },
        ),
        (
            "iat in an hour",
            Claims {
                iat: now + 3600,
                ..claims.clone()
            },
        ),
        (
            "the next version",
            Claims {
                ver: claims.ver + 1,
                ..claims.clone()
            },
        ),
        (
            "an earlier version",
            Claims {
                ver: claims.ver - 1,
                ..claims.clone()
            },
        ),
    ] {
        let resp = app.get(WEBHOOKS, Some(&keys.sign(&forged).unwrap())).await;
        assert_eq!(resp.status, 401, "{what}: {}", resp.text);
        assert_eq!(resp.detail(), "Not authenticated", "{what}");
    }
}
