//! Secrets at rest and secret rotation: encrypted storage that still
//! verifies, legacy plaintext rows and `decnet secrets encrypt`, a wrong key at
//! start, and the rotation window seen by receivers holding either secret.

use std::process::Command;

use base64::Engine as _;
use chrono::Utc;
use decnet_webhook::secrets::{check_key, KeyCheckError, SecretStore};
use entity::webhook_subscription::{Column, Entity};
use hmac::{Hmac, Mac};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{
    eventually,
    probe::ReloadProbe,
    worker::{insert_subscription, WorkerApp, SECRET},
    AppOptions, Recorded, TestApp, TestDb, TestReceiver, WAIT,
};

const KEY: &str = "5f0c2d7e9a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5";
const OTHER_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OLD: &str = "the-old-receiver-secret-0123456789";
const NEW: &str = "the-new-receiver-secret-9876543210";
const PLAINTEXT_WARNING: &str =
    "plaintext_secret: DECNET_SECRET_KEY is not set; the secret is stored in plaintext.";

/// What a receiver holding only `secret` accepts: one of the `X-DECNET-Signature`
/// entries is its HMAC, and the Standard Webhooks library verifies the request.
fn accepts(secret: &str, req: &Recorded) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&req.body);
    let mine = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let decnet_ok = req
        .header("x-decnet-signature")
        .is_some_and(|h| h.split(',').any(|entry| entry == mine));
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(secret)
    );
    let mut headers = reqwest::header::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(v) = req.header(name) {
            headers.insert(name, v.parse().unwrap());
        }
    }
    let standard_ok = standardwebhooks::Webhook::new(&whsec)
        .unwrap()
        .verify(&req.body, &headers)
        .is_ok();
    assert_eq!(
        decnet_ok, standard_ok,
        "both signature schemes agree for one secret"
    );
    decnet_ok
}

fn signature_count(req: &Recorded) -> (usize, usize) {
    let decnet = req
        .header("x-decnet-signature")
        .map_or(0, |h| h.split(',').count());
    let standard = req
        .header("webhook-signature")
        .map_or(0, |h| h.split(' ').count());
    (decnet, standard)
}

/// Publish one event and return the request it became.
async fn deliver_one(worker: &WorkerApp, rx: &TestReceiver, id: &str) -> Recorded {
    let before = rx.count();
    let body = format!(r#"{{"id":"{id}","payload":{{"n":1}}}}"#);
    worker.publish("attacker.observed", body.as_bytes()).await;
    let reqs = rx.wait_for(before + 1, WAIT).await;
    reqs.into_iter()
        .find(|r| r.json()["id"] == id)
        .expect("the published event was delivered")
}

/// A worker with `KEY` on a database prepared by the test; it reloads only when told.
async fn keyed_worker(test_db: TestDb, db: sea_orm::DatabaseConnection) -> WorkerApp {
    WorkerApp::start_with_db(
        crate::helpers::NatsServer::start(),
        test_db,
        db,
        &[("secret_key", KEY), ("webhook_reload_secs", "3600")],
    )
    .await
}

/// The API on the worker's database and bus, with the same key (or none).
async fn api_beside(worker: &WorkerApp, key: Option<&str>) -> TestApp {
    let mut options = AppOptions::default()
        .setting("bus_enabled", "true")
        .setting("nats_url", &worker.nats.url())
        .setting("database_url", &worker.test_db.url)
        .setting("webhook_allow_private", "true");
    if let Some(key) = key {
        options = options.setting("secret_key", key);
    }
    TestApp::spawn(options).await
}

fn decnet(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_decnet"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DECNET_BUS_ENABLED", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("decnet runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn stored_secrets_are_encrypted_and_deliveries_still_verify() {
    let worker = WorkerApp::start(&[("secret_key", KEY)]).await;
    let api = api_beside(&worker, Some(KEY)).await;
    let token = api.admin_token().await;
    let rx = TestReceiver::start();
    let created = api
        .create_webhook(
            &token,
            &json!({"name": "sealed", "url": rx.url(), "secret": OLD,
                    "topic_patterns": ["attacker.>"]}),
        )
        .await;
    let uuid = created["uuid"].as_str().unwrap();
    assert_eq!(created["secret"], OLD);
    assert!(
        !created["warnings"]
            .as_array()
            .unwrap()
            .contains(&json!(PLAINTEXT_WARNING)),
        "{created}"
    );

    let row = worker.row(uuid).await;
    assert_ne!(row.secret, OLD);
    assert!(row.secret.starts_with("enc:v2:"), "{}", row.secret);
    assert!(!row.secret.contains(OLD));

    worker.wait_running(&[uuid]).await;
    let req = deliver_one(&worker, &rx, "sealed-1").await;
    assert!(accepts(OLD, &req));
    assert_eq!(signature_count(&req), (1, 1));

    // A PATCH of the secret is sealed too, and reaches the worker in place.
    let at = format!("/api/v1/webhooks/{uuid}");
    let patched = api.patch(&at, Some(&token), &json!({"secret": NEW})).await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert!(patched.json().get("secret").is_none());
    let row = worker.row(uuid).await;
    assert!(row.secret.starts_with("enc:v2:") && !row.secret.contains(NEW));
    let mut n = 0;
    let req = eventually(WAIT, "a delivery signed with the patched secret", || {
        n += 1;
        let id = format!("patched-{n}");
        let (worker, rx) = (&worker, &rx);
        async move {
            let req = deliver_one(worker, rx, &id).await;
            accepts(NEW, &req).then_some(req)
        }
    })
    .await;
    assert!(!accepts(OLD, &req));

    // The secret never shows in reads.
    let one = api.get(&at, Some(&token)).await;
    assert!(
        !one.text.contains(NEW) && !one.text.contains("enc:"),
        "{}",
        one.text
    );
    assert!(one.json().get("secret").is_none());
    let all = api.get("/api/v1/webhooks/", Some(&token)).await;
    assert!(!all.text.contains(NEW) && !all.text.contains("enc:"));
}

#[actix_rt::test]
async fn without_a_key_the_answer_says_the_secret_is_stored_in_plaintext() {
    let app = TestApp::spawn_default().await;
    let token = app.admin_token().await;
    let created = app
        .create_webhook(
            &token,
            &json!({"name": "plain", "url": "https://1.1.1.1/hook", "secret": OLD,
                    "topic_patterns": ["attacker.>"]}),
        )
        .await;
    assert_eq!(created["warnings"], json!([PLAINTEXT_WARNING]));
    let uuid = created["uuid"].as_str().unwrap();
    let row = decnet_webhook::db::subscriptions::get(&app.db, uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.secret, OLD);
    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{uuid}/rotate-secret"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.json()["warnings"], json!([PLAINTEXT_WARNING]));
    // Reads carry no such warning: it belongs to the answers that show a secret.
    let one = app
        .get(&format!("/api/v1/webhooks/{uuid}"), Some(&token))
        .await;
    assert_eq!(one.json()["warnings"], json!([]));
}

#[actix_rt::test]
async fn legacy_plaintext_rows_deliver_and_secrets_encrypt_converts_them() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    let uuid = insert_subscription(&db, "legacy", &rx.url(), &["attacker.>"]).await;
    // A second legacy row mid-rotation: both of its secrets are plaintext.
    let rotating =
        insert_subscription(&db, "legacy-rotating", "https://1.1.1.1/hook", &["x.y"]).await;
    Entity::update_many()
        .col_expr(Column::PreviousSecret, Expr::value(OLD))
        .col_expr(
            Column::PreviousSecretExpiresAt,
            Expr::value(Utc::now() + chrono::Duration::hours(1)),
        )
        .filter(Column::Uuid.eq(rotating.as_str()))
        .exec(&db)
        .await
        .unwrap();

    // Without a key there is nothing to encrypt with.
    let (code, _, stderr) = decnet(
        &["secrets", "encrypt"],
        &[("DECNET_DATABASE_URL", &test_db.url)],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("DECNET_SECRET_KEY"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let worker = keyed_worker(test_db, db).await;
    worker.wait_running(&[&uuid, &rotating]).await;
    let req = deliver_one(&worker, &rx, "legacy-1").await;
    assert!(accepts(SECRET, &req), "a legacy plaintext row still signs");

    let env = [
        ("DECNET_DATABASE_URL", worker.test_db.url.as_str()),
        ("DECNET_SECRET_KEY", KEY),
    ];
    let (code, stdout, stderr) = decnet(&["secrets", "encrypt"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(" 2 "), "{stdout}");
    for id in [&uuid, &rotating] {
        let row = worker.row(id).await;
        assert!(row.secret.starts_with("enc:v2:"), "{}", row.secret);
        assert!(!row.secret.contains(SECRET));
    }
    let previous = worker.row(&rotating).await.previous_secret.unwrap();
    assert!(previous.starts_with("enc:v2:") && !previous.contains(OLD));
    let opened = SecretStore::new(decnet_webhook::config::decode_key(KEY).as_ref());
    assert_eq!(opened.open(&rotating, &previous).unwrap().expose(), OLD);

    // Idempotent: a second run converts nothing.
    let (code, stdout, _) = decnet(&["secrets", "encrypt"], &env);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(" 0 "), "{stdout}");

    // The converted row still delivers, with the same secret.
    worker.signal_changed().await;
    let req = deliver_one(&worker, &rx, "legacy-2").await;
    assert!(accepts(SECRET, &req));
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_wrong_or_missing_key_stops_the_program_with_one_line() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    insert_subscription(&db, "keyed", "https://1.1.1.1/hook", &["attacker.>"]).await;
    let url = test_db.url.as_str();
    // The first start with a key stores the check value (and here encrypts the row).
    let (code, _, stderr) = decnet(
        &["secrets", "encrypt"],
        &[("DECNET_DATABASE_URL", url), ("DECNET_SECRET_KEY", KEY)],
    );
    assert_eq!(code, Some(0), "{stderr}");

    for (command, key) in [
        ("webhook", Some(OTHER_KEY)),
        ("api", Some(OTHER_KEY)),
        ("secrets", Some(OTHER_KEY)),
        ("webhook", None),
        ("serve", None),
    ] {
        let mut env = vec![
            ("DECNET_DATABASE_URL", url),
            (
                "DECNET_JWT_SECRET",
                "a-jwt-secret-of-at-least-32-bytes-long!",
            ),
            ("DECNET_API_BIND", "127.0.0.1:0"),
        ];
        if let Some(key) = key {
            env.push(("DECNET_SECRET_KEY", key));
        }
        let args: &[&str] = if command == "secrets" {
            &["secrets", "encrypt"]
        } else {
            &[command]
        };
        let (code, _, stderr) = decnet(args, &env);
        let what = format!("{command} with key {key:?}");
        assert_eq!(code, Some(2), "{what}: {stderr}");
        let last = stderr.trim().lines().last().unwrap_or_default();
        assert!(last.starts_with("decnet: "), "{what}: {stderr}");
        assert!(last.contains("DECNET_SECRET_KEY"), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!stderr.contains(OTHER_KEY) && !stderr.contains(KEY));
    }
}

#[actix_rt::test]
async fn a_sealed_secret_copied_into_another_row_does_not_open_there() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let store = SecretStore::new(decnet_webhook::config::decode_key(KEY).as_ref());
    // The key's check value is written while nothing is sealed yet.
    check_key(&db, &store).await.unwrap();
    let (rx_own, rx_copy) = (TestReceiver::start(), TestReceiver::start());
    let own = insert_subscription(&db, "own-secret", &rx_own.url(), &["attacker.>"]).await;
    let copy = insert_subscription(&db, "copied-secret", &rx_copy.url(), &["attacker.>"]).await;
    // Someone with write access to the database copies one row's sealed secret into
    // another row, whose receiver they control.
    let sealed = store.seal(&own, OLD);
    for id in [&own, &copy] {
        Entity::update_many()
            .col_expr(Column::Secret, Expr::value(sealed.clone()))
            .filter(Column::Uuid.eq(id.as_str()))
            .exec(&db)
            .await
            .unwrap();
    }
    let worker = keyed_worker(test_db, db).await;
    // Only the row the secret was sealed for runs; the other is skipped, never
    // signing anything with a secret that is not its own.
    worker.wait_running(&[&own]).await;
    let req = deliver_one(&worker, &rx_own, "bound-1").await;
    assert!(accepts(OLD, &req));
    assert_eq!(rx_copy.count(), 0);
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn encrypted_rows_without_a_check_value_still_catch_a_wrong_key() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let right = SecretStore::new(decnet_webhook::config::decode_key(KEY).as_ref());
    let wrong = SecretStore::new(decnet_webhook::config::decode_key(OTHER_KEY).as_ref());
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut row = decnet_webhook::db::subscriptions::new_row(
        "sealed-earlier",
        "https://1.1.1.1/hook",
        &right.seal(&uuid, OLD),
        &["attacker.>".to_owned()],
        true,
    );
    row.uuid = sea_orm::Set(uuid);
    decnet_webhook::db::subscriptions::insert(&db, row)
        .await
        .unwrap();
    assert!(matches!(
        check_key(&db, &wrong).await,
        Err(KeyCheckError::WrongKey)
    ));
    assert!(matches!(
        check_key(&db, &SecretStore::default()).await,
        Err(KeyCheckError::KeyMissing)
    ));
    check_key(&db, &right).await.expect("the right key passes");
    // Now the stored check value decides.
    check_key(&db, &right).await.expect("and passes again");
    assert!(matches!(
        check_key(&db, &wrong).await,
        Err(KeyCheckError::WrongKey)
    ));
}

#[actix_rt::test]
async fn during_a_rotation_either_secret_verifies_and_after_it_only_the_new_one() {
    // What each reload did, as the supervisor (on this thread) reports it.
    let reloads = ReloadProbe::install();
    let worker = WorkerApp::start(&[("secret_key", KEY), ("webhook_reload_secs", "3600")]).await;
    let api = api_beside(&worker, Some(KEY)).await;
    let token = api.admin_token().await;
    let rx = TestReceiver::start();
    let created = api
        .create_webhook(
            &token,
            &json!({"name": "rotating", "url": rx.url(), "secret": OLD,
                    "topic_patterns": ["attacker.>"]}),
        )
        .await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    assert_eq!(created["secret_rotated_at"], Value::Null);
    assert_eq!(created["previous_secret_expires_at"], Value::Null);
    worker.wait_running(&[&uuid]).await;
    let req = deliver_one(&worker, &rx, "before").await;
    assert!(accepts(OLD, &req) && !accepts(NEW, &req));

    let at = format!("/api/v1/webhooks/{uuid}/rotate-secret");
    let rotated = api.post(&at, Some(&token), &json!({"secret": NEW})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let body = rotated.json();
    assert_eq!(body["secret"], NEW);
    assert_eq!(body["uuid"], json!(uuid));
    let rotated_at: chrono::DateTime<Utc> =
        body["secret_rotated_at"].as_str().unwrap().parse().unwrap();
    let expires: chrono::DateTime<Utc> = body["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires - rotated_at, chrono::Duration::hours(24));
    let one = api
        .get(&format!("/api/v1/webhooks/{uuid}"), Some(&token))
        .await
        .json();
    assert_eq!(
        one["previous_secret_expires_at"],
        body["previous_secret_expires_at"]
    );
    assert!(one.get("secret").is_none());
    let row = worker.row(&uuid).await;
    assert!(row.secret.starts_with("enc:v2:"));
    assert!(row
        .previous_secret
        .as_deref()
        .is_some_and(|p| p.starts_with("enc:v2:")));

    // The bus signal reaches the running worker; from then on both secrets sign.
    let mut n = 0;
    let req = eventually(WAIT, "a delivery signed with both secrets", || {
        n += 1;
        let id = format!("window-{n}");
        let (worker, rx) = (&worker, &rx);
        async move {
            let req = deliver_one(worker, rx, &id).await;
            (signature_count(&req) == (2, 2)).then_some(req)
        }
    })
    .await;
    assert!(
        accepts(OLD, &req),
        "a receiver still on the old secret accepts"
    );
    assert!(accepts(NEW, &req), "a receiver on the new secret accepts");
    let touched = reloads.last();
    assert!(touched.seen, "the rotation was applied by a reload");
    assert_eq!(
        (touched.started, touched.stopped, touched.updated),
        (0, 0, 1),
        "a rotation updates the running subscription in place, no restart"
    );
    let header = req.header("x-decnet-signature").unwrap();
    assert!(
        header.starts_with("sha256=") && header.contains(",sha256="),
        "{header}"
    );

    // Bring the end of the window near; the worker drops the old secret at expiry.
    Entity::update_many()
        .col_expr(
            Column::PreviousSecretExpiresAt,
            Expr::value(Utc::now() + chrono::Duration::seconds(1)),
        )
        .filter(Column::Uuid.eq(uuid.as_str()))
        .exec(&worker.db)
        .await
        .unwrap();
    worker.signal_changed().await;
    let req = eventually(WAIT, "a delivery signed with the new secret alone", || {
        n += 1;
        let id = format!("after-{n}");
        let (worker, rx) = (&worker, &rx);
        async move {
            let req = deliver_one(worker, rx, &id).await;
            (signature_count(&req) == (1, 1)).then_some(req)
        }
    })
    .await;
    assert!(accepts(NEW, &req));
    assert!(
        !accepts(OLD, &req),
        "after the window the old secret is refused"
    );
    let one = api
        .get(&format!("/api/v1/webhooks/{uuid}"), Some(&token))
        .await
        .json();
    assert_eq!(one["previous_secret_expires_at"], Value::Null);
    assert_eq!(one["secret_rotated_at"], body["secret_rotated_at"]);
}

#[actix_rt::test]
async fn rotate_secret_validates_and_generates() {
    let app = TestApp::spawn(AppOptions::default().setting("secret_key", KEY)).await;
    let token = app.admin_token().await;
    let created = app
        .create_webhook(&token, &crate::api::valid_webhook("rot"))
        .await;
    let uuid = created["uuid"].as_str().unwrap();
    let at = format!("/api/v1/webhooks/{uuid}/rotate-secret");

    let unknown = app
        .post(
            &format!("/api/v1/webhooks/{}/rotate-secret", uuid::Uuid::new_v4()),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let short = app
        .post(&at, Some(&token), &json!({"secret": "short"}))
        .await;
    assert_eq!(short.status, 422, "{}", short.text);
    assert!(short.detail().contains("secret"), "{}", short.text);
    let extra = app.post(&at, Some(&token), &json!({"bogus": 1})).await;
    assert_eq!(extra.status, 422, "{}", extra.text);
    assert!(extra.detail().contains("bogus"));
    let get_not_allowed = app.get(&at, Some(&token)).await;
    assert_eq!(get_not_allowed.status, 405);

    // `null`, as the document allows, is no body too.
    let null = app
        .send_raw(reqwest::Method::POST, &at, Some(&token), "null")
        .await;
    assert_eq!(null.status, 200, "{}", null.text);
    // No body at all: a secret is generated, like create's.
    let resp = app
        .send_raw(reqwest::Method::POST, &at, Some(&token), "")
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let first = resp.json()["secret"].as_str().unwrap().to_owned();
    assert!(first.len() >= 43, "{first}");
    assert_ne!(first, created["secret"].as_str().unwrap());
    assert_eq!(resp.json()["warnings"], json!([]));
    let again = app.post(&at, Some(&token), &json!({})).await.json();
    assert_ne!(again["secret"].as_str().unwrap(), first);

    // The previous secret is the one just replaced, sealed.
    let row = decnet_webhook::db::subscriptions::get(&app.db, uuid)
        .await
        .unwrap()
        .unwrap();
    let store = SecretStore::new(decnet_webhook::config::decode_key(KEY).as_ref());
    assert_eq!(
        store
            .open(uuid, row.previous_secret.as_deref().unwrap())
            .unwrap()
            .expose(),
        first
    );
    assert_eq!(
        store.open(uuid, &row.secret).unwrap().expose(),
        again["secret"].as_str().unwrap()
    );
}
