//! Authenticating to receivers, end to end: subscriptions made through the API, events
//! through the real worker, real TLS and real HTTP. Static headers, basic and bearer
//! authorization, OAuth2 client credentials against a local token endpoint, and a
//! receiver that requires a client certificate from a private CA.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    eventually,
    oauth::{OAuthServer, TokenReply},
    process::Decnet,
    tls::{TestCa, TlsFront},
    worker::WorkerApp,
    AppOptions, NatsServer, TestApp, TestDb, TestReceiver, WAIT,
};

const KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// Values that must never leave the service once given.
const HEADER_SECRET: &str = "hdr-secret-Qx81vZ";
const PASSWORD: &str = "basic-password-Lk29";
const BEARER: &str = "bearer-token-Hs73Wq";
const CLIENT_SECRET: &str = "client-secret-Pm52";
const URL_TOKEN: &str = "url-token-Vb64Rt";

/// A worker with `KEY` and the API beside it on the same bus and database.
async fn keyed() -> (WorkerApp, TestApp, String) {
    let worker = WorkerApp::start(&[("secret_key", KEY)]).await;
    let api = TestApp::spawn(
        AppOptions::default()
            .setting("bus_enabled", "true")
            .setting("nats_url", &worker.nats.url())
            .setting("database_url", &worker.test_db.url)
            .setting("webhook_allow_private", "true")
            .setting("webhook_timeout_secs", "2")
            .setting("secret_key", KEY),
    )
    .await;
    let token = api.admin_token().await;
    (worker, api, token)
}

/// Create through the API, then wait until the worker runs it.
async fn create(worker: &WorkerApp, api: &TestApp, token: &str, body: Value) -> Value {
    let created = api.create_webhook(token, &body).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    eventually(WAIT, "the worker runs the new subscription", || async {
        worker
            .status()
            .await
            .running
            .contains_key(&uuid)
            .then_some(())
    })
    .await;
    created
}

fn uuid(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_owned()
}

async fn dead_letters(api: &TestApp, token: &str, uuid: &str) -> Vec<Value> {
    let resp = api
        .get(
            &format!("/api/v1/webhooks/{uuid}/dead-letters"),
            Some(token),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.json()["items"].as_array().unwrap().clone()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [HEADER_SECRET, PASSWORD, BEARER, CLIENT_SECRET] {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

#[actix_rt::test]
async fn a_receiver_requiring_a_client_certificate_gets_one_only_when_configured() {
    let (worker, api, token) = keyed().await;
    let ca = TestCa::new("decnet test CA");
    let rx = TestReceiver::start();
    let front = TlsFront::start(&ca, &ca.server(), true, rx.port);
    let client = ca.client("decnet-webhook");

    // Trusting the private CA but without a client certificate: refused.
    let bare = create(
        &worker,
        &api,
        &token,
        json!({"name": "no-cert", "url": front.url(), "topic_patterns": ["bare.>"],
               "tls": {"ca_pem": ca.cert_pem}}),
    )
    .await;
    // Without the private CA, the receiver's certificate is not trusted at all.
    let untrusted = create(
        &worker,
        &api,
        &token,
        json!({"name": "no-ca", "url": front.url(), "topic_patterns": ["untrusted.>"]}),
    )
    .await;
    let mtls = create(
        &worker,
        &api,
        &token,
        json!({"name": "mtls", "url": front.url(), "topic_patterns": ["mtls.>"],
               "tls": {"ca_pem": ca.cert_pem, "client_cert_pem": client.cert_pem,
                       "client_key_pem": client.key_pem}}),
    )
    .await;
    assert_eq!(mtls["tls"]["client_key_stored"], true);
    assert_eq!(mtls["tls"]["client_cert_pem"], client.cert_pem.as_str());
    assert!(!mtls.to_string().contains("PRIVATE KEY"), "{mtls}");

    worker
        .publish("bare.x", br#"{"id":"bare-1","payload":{}}"#)
        .await;
    worker
        .publish("untrusted.x", br#"{"id":"untrusted-1","payload":{}}"#)
        .await;
    worker
        .publish("mtls.x", br#"{"id":"mtls-1","payload":{}}"#)
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-decnet-event-id"), Some("mtls-1"));
    assert_eq!(
        got[0].header("x-decnet-signature").unwrap(),
        crate::helpers::worker::expected_signature_with(
            mtls["secret"].as_str().unwrap(),
            &got[0].body
        )
    );
    for (sub, what) in [
        (&bare, "no client certificate"),
        (&untrusted, "no private CA"),
    ] {
        let letters = eventually(WAIT, what, || async {
            let l = dead_letters(&api, &token, &uuid(sub)).await;
            (!l.is_empty()).then_some(l)
        })
        .await;
        let error = letters[0]["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.starts_with("tls: "), "{what}: {error}");
    }
    assert!(front.refused.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        rx.count(),
        1,
        "only the delivery with a certificate got through"
    );
    assert!(
        front
            .with_client_cert
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );

    // The test ping goes the same way.
    let ping = |uuid: String| {
        let (api, token) = (&api, &token);
        async move {
            api.post(
                &format!("/api/v1/webhooks/{uuid}/test"),
                Some(token),
                &json!({}),
            )
            .await
            .json()
        }
    };
    assert_eq!(ping(uuid(&mtls)).await["delivered"], true);
    let refused = ping(uuid(&bare)).await;
    assert_eq!(refused["delivered"], false, "{refused}");

    // The key is sealed at rest, bound to its row and field.
    let row = worker.row(&uuid(&mtls)).await;
    let stored_key = row.tls_client_key_pem.unwrap();
    assert!(stored_key.starts_with("enc:v2:"), "{stored_key}");
    assert_eq!(
        row.tls_client_cert_pem.as_deref(),
        Some(client.cert_pem.as_str())
    );
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn oauth2_tokens_are_shared_cached_and_renewed_once_on_401() {
    let (worker, api, token) = keyed().await;
    // The answer waits, so the first deliveries all need the token while it is fetched.
    let idp = OAuthServer::start(TokenReply::Grant {
        lifetime: Duration::from_secs(3600),
        delay: Duration::from_millis(300),
    });
    let created = create(
        &worker,
        &api,
        &token,
        json!({"name": "oauth", "url": idp.hook_url(), "topic_patterns": ["attacker.>"],
               "auth": {"type": "oauth2_client_credentials", "token_url": idp.token_url(),
                        "client_id": "decnet", "client_secret": CLIENT_SECRET,
                        "scope": "events.write", "audience": "https://siem.example"}}),
    )
    .await;
    assert_eq!(
        created["auth"],
        json!({"type": "oauth2_client_credentials", "token_url": idp.token_url(),
               "client_id": "decnet", "scope": "events.write",
               "audience": "https://siem.example"})
    );
    assert_no_secret("the create answer", &created.to_string());

    worker.publish_events("many", 100).await;
    eventually(WAIT, "100 deliveries accepted", || async {
        let n = idp.accepted().len();
        (n >= 100).then_some(()).ok_or(format!("{n} accepted"))
    })
    .await;
    let requests = idp.token_requests();
    assert_eq!(requests.len(), 1, "one token request for 100 deliveries");
    assert!(
        idp.hooks().iter().all(|h| h.status == 200),
        "no 401 while valid"
    );
    let form = &requests[0].form;
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("scope=events.write"), "{form}");
    assert!(
        form.contains("audience=https%3A%2F%2Fsiem.example"),
        "{form}"
    );
    // The client authenticates with HTTP Basic.
    use base64::Engine as _;
    let basic = requests[0].authorization.as_deref().unwrap();
    let pair = base64::engine::general_purpose::STANDARD
        .decode(basic.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(pair, format!("decnet:{CLIENT_SECRET}").as_bytes());

    // The receiver stops accepting the token: one 401, one new token, delivered.
    idp.revoke_all();
    worker
        .publish(
            "attacker.observed",
            br#"{"id":"after-revoke","payload":{}}"#,
        )
        .await;
    let delivered = eventually(WAIT, "the event after the revocation", || async {
        idp.accepted()
            .into_iter()
            .find(|h| h.event_id.as_deref() == Some("after-revoke"))
    })
    .await;
    assert_eq!(delivered.authorization.as_deref(), Some("Bearer tok-2"));
    assert_eq!(idp.token_requests().len(), 2, "one refetch after the 401");
    let refused: Vec<_> = idp
        .hooks()
        .into_iter()
        .filter(|h| h.status == 401)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let row = worker.row(&uuid(&created)).await;
    assert_eq!(row.consecutive_failures, 0);
    assert!(!row.auth.as_deref().unwrap().contains(CLIENT_SECRET));
    assert!(row.auth.as_deref().unwrap().contains("\"enc:v2:"));

    // The test ping authenticates the same way.
    let ping = api
        .post(
            &format!("/api/v1/webhooks/{}/test", uuid(&created)),
            Some(&token),
            &json!({}),
        )
        .await
        .json();
    assert_eq!(ping["delivered"], true, "{ping}");
    assert!(idp
        .accepted()
        .last()
        .unwrap()
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Bearer tok-"));
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn an_expiring_token_is_renewed_before_the_receiver_refuses_it() {
    let (worker, api, token) = keyed().await;
    let idp = OAuthServer::start(TokenReply::Grant {
        lifetime: Duration::from_secs(1),
        delay: Duration::ZERO,
    });
    create(
        &worker,
        &api,
        &token,
        json!({"name": "short", "url": idp.hook_url(), "topic_patterns": ["attacker.>"],
               "auth": {"type": "oauth2_client_credentials", "token_url": idp.token_url(),
                        "client_id": "decnet", "client_secret": CLIENT_SECRET}}),
    )
    .await;
    worker
        .publish("attacker.observed", br#"{"id":"first","payload":{}}"#)
        .await;
    eventually(WAIT, "the first delivery", || async {
        (idp.accepted().len() == 1).then_some(())
    })
    .await;
    eventually(WAIT, "the first token to expire", || async {
        idp.expired(1).then_some(())
    })
    .await;
    worker
        .publish("attacker.observed", br#"{"id":"second","payload":{}}"#)
        .await;
    let second = eventually(WAIT, "the second delivery", || async {
        idp.accepted()
            .into_iter()
            .find(|h| h.event_id.as_deref() == Some("second"))
    })
    .await;
    assert_eq!(second.authorization.as_deref(), Some("Bearer tok-2"));
    assert!(
        idp.hooks().iter().all(|h| h.status == 200),
        "renewed before use, never refused"
    );
    assert_eq!(idp.token_requests().len(), 2);
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_failing_token_endpoint_dead_letters_and_replay_delivers_once_it_works() {
    let (worker, api, token) = keyed().await;
    let idp = OAuthServer::start(TokenReply::Error(400, "invalid_client"));
    let created = create(
        &worker,
        &api,
        &token,
        json!({"name": "bad-client", "url": idp.hook_url(), "topic_patterns": ["attacker.>"],
               "auth": {"type": "oauth2_client_credentials", "token_url": idp.token_url(),
                        "client_id": "decnet", "client_secret": CLIENT_SECRET}}),
    )
    .await;
    let id = uuid(&created);
    worker
        .publish("attacker.observed", br#"{"id":"stuck","payload":{}}"#)
        .await;
    let letters = eventually(WAIT, "the dead letter", || async {
        let l = dead_letters(&api, &token, &id).await;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters[0]["reason"], "non_retryable");
    assert_eq!(
        letters[0]["error"],
        "oauth2: token endpoint answered 400: invalid_client"
    );
    let row = worker.row(&id).await;
    assert_eq!(row.consecutive_failures, 1, "counted like any failure");
    assert_eq!(
        row.last_error.as_deref(),
        Some("oauth2: token endpoint answered 400: invalid_client")
    );
    assert!(idp.hooks().is_empty(), "nothing sent without a token");
    // Counted apart, so an alert can tell the token endpoint from the receiver.
    let metrics = decnet_webhook::metrics::global().render().unwrap();
    let series = format!("decnet_webhook_token_failures_total{{subscription=\"{id}\"}} 1");
    assert!(
        metrics.lines().any(|l| l == series),
        "{series} in\n{metrics}"
    );

    idp.set_reply(TokenReply::Grant {
        lifetime: Duration::from_secs(3600),
        delay: Duration::ZERO,
    });
    let replay = api
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.json()["replayed"], 1, "{}", replay.text);
    let hooks = idp.accepted();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].event_id.as_deref(), Some("stuck"));
    assert!(hooks[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Bearer tok-"));
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn static_headers_and_credentials_are_sent_sealed_and_never_shown() {
    let (worker, api, token) = keyed().await;
    let rx = TestReceiver::start();
    let created = create(
        &worker,
        &api,
        &token,
        json!({"name": "hdr", "url": rx.url(), "topic_patterns": ["attacker.>"],
               "headers": {"X-Api-Key": HEADER_SECRET, "X-Tenant": "blue"},
               "auth": {"type": "basic", "username": "decnet", "password": PASSWORD}}),
    )
    .await;
    let id = uuid(&created);
    assert_no_secret("the create answer", &created.to_string());
    assert_eq!(created["headers"], json!(["X-Api-Key", "X-Tenant"]));
    assert_eq!(
        created["auth"],
        json!({"type": "basic", "username": "decnet"})
    );
    worker
        .publish("attacker.observed", br#"{"id":"h1","payload":{}}"#)
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some(HEADER_SECRET));
    assert_eq!(got[0].header("x-tenant"), Some("blue"));
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("decnet:{PASSWORD}"))
    );
    assert_eq!(got[0].header("authorization"), Some(expected.as_str()));
    // The signature is still over the body sent.
    assert_eq!(
        got[0].header("x-decnet-signature").unwrap(),
        crate::helpers::worker::expected_signature_with(
            created["secret"].as_str().unwrap(),
            &got[0].body
        )
    );

    // A PATCH keeps a header given as null, replaces the rest, and swaps the scheme.
    let patched = api
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            Some(&token),
            &json!({"headers": {"X-Api-Key": null, "X-Region": "eu"},
                    "auth": {"type": "bearer", "token": BEARER}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["headers"], json!(["X-Api-Key", "X-Region"]));
    assert_eq!(patched.json()["auth"], json!({"type": "bearer"}));
    eventually(WAIT, "the patched headers in use", || async {
        worker
            .publish("attacker.observed", br#"{"id":"h2","payload":{}}"#)
            .await;
        let last = rx.requests().pop()?;
        (last.header("authorization") == Some(&format!("Bearer {BEARER}"))).then_some(last)
    })
    .await;
    let last = rx.requests().pop().unwrap();
    assert_eq!(last.header("x-api-key"), Some(HEADER_SECRET));
    assert_eq!(last.header("x-region"), Some("eu"));
    assert_eq!(last.header("x-tenant"), None);

    // Sealed at rest, each bound to its field.
    let row = worker.row(&id).await;
    for (column, value) in [("headers", row.headers.clone()), ("auth", row.auth.clone())] {
        let value = value.unwrap();
        assert_no_secret(column, &value);
        assert!(value.contains("\"enc:v2:"), "{column}: {value}");
    }

    // No answer and no page of the API description carries them.
    for path in [
        format!("/api/v1/webhooks/{id}"),
        "/api/v1/webhooks/".to_owned(),
        "/api/v1/openapi.json".to_owned(),
    ] {
        let resp = api.get(&path, Some(&token)).await;
        assert_eq!(resp.status, 200, "{path}");
        assert_no_secret(&path, &resp.text);
    }
    assert_no_secret("the PATCH answer", &patched.text);
    worker.stop().await.unwrap();
}

#[actix_rt::test]
async fn invalid_headers_auth_and_pems_are_refused_naming_the_field() {
    let app = TestApp::spawn(AppOptions::default().setting("webhook_allow_private", "true")).await;
    let token = app.admin_token().await;
    let ca = TestCa::new("refusals CA");
    let client = ca.client("c");
    let other = ca.client("other");
    let expired = ca.expired_client();
    let base = |extra: Value| {
        let mut body =
            json!({"name": "x", "url": "https://1.1.1.1/hook", "topic_patterns": ["a.>"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"headers": {"Host": "x"}}), "headers.Host: "),
        (
            json!({"headers": {"Content-Type": "text/plain"}}),
            "headers.Content-Type: ",
        ),
        (
            json!({"headers": {"Content-Length": "1"}}),
            "headers.Content-Length: ",
        ),
        (
            json!({"headers": {"Transfer-Encoding": "chunked"}}),
            "headers.Transfer-Encoding: ",
        ),
        (
            json!({"headers": {"Connection": "close"}}),
            "headers.Connection: ",
        ),
        (
            json!({"headers": {"X-DECNET-Signature": "sha256=0"}}),
            "headers.X-DECNET-Signature: ",
        ),
        (
            json!({"headers": {"webhook-id": "x"}}),
            "headers.webhook-id: ",
        ),
        (
            json!({"headers": {"bad name": "x"}}),
            "headers.\"bad name\": ",
        ),
        (json!({"headers": {"X-A": "line\nbreak"}}), "headers.X-A: "),
        (json!({"headers": {"X-A": null}}), "headers.X-A: "),
        (
            json!({"headers": {"Authorization": "Splunk x"}, "auth": {"type": "bearer", "token": "t"}}),
            "headers.Authorization: conflicts with auth",
        ),
        (json!({"auth": {"type": "bearer"}}), "auth.token: required"),
        (
            json!({"auth": {"type": "basic", "username": "a:b", "password": "p"}}),
            "auth.username: ",
        ),
        (
            json!({"auth": {"type": "oauth2_client_credentials", "token_url": "ftp://x/", "client_id": "c", "client_secret": "s"}}),
            "auth.token_url: ",
        ),
        (
            json!({"tls": {"ca_pem": "not a pem"}}),
            "tls.ca_pem: not PEM",
        ),
        (
            json!({"tls": {"client_cert_pem": client.cert_pem, "client_key_pem": other.key_pem}}),
            "tls.client_key_pem: the key does not match the certificate",
        ),
        (
            json!({"tls": {"client_cert_pem": expired.cert_pem, "client_key_pem": expired.key_pem}}),
            "tls.client_cert_pem: certificate 1 expired on 2001-01-01",
        ),
        (
            json!({"tls": {"client_cert_pem": client.cert_pem}}),
            "tls.client_key_pem: required",
        ),
    ];
    for (extra, want) in cases {
        let resp = app
            .post("/api/v1/webhooks/", Some(&token), &base(extra.clone()))
            .await;
        assert_eq!(resp.status, 422, "{extra}: {}", resp.text);
        assert!(
            resp.detail().starts_with(want),
            "{extra}: {}",
            resp.detail()
        );
    }
    let too_many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let resp = app
        .post(
            "/api/v1/webhooks/",
            Some(&token),
            &base(json!({"headers": too_many})),
        )
        .await;
    assert_eq!(resp.status, 422, "{}", resp.text);
    assert!(
        resp.detail().contains("at most 20 headers"),
        "{}",
        resp.detail()
    );
}

/// POST `body` as JSON to a spawned service, with `bearer` if any; its answer's JSON.
async fn post_json(
    http: &reqwest::Client,
    url: String,
    bearer: Option<&str>,
    body: &Value,
) -> Value {
    let mut request = http.post(url).json(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[actix_rt::test]
async fn receiver_credentials_never_reach_the_log() {
    let nats = NatsServer::start();
    let test_db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let idp = OAuthServer::start(TokenReply::Grant {
        lifetime: Duration::from_secs(3600),
        delay: Duration::ZERO,
    });
    let env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
        (
            "DECNET_JWT_SECRET",
            "log-test-jwt-secret-0123456789abcdef".into(),
        ),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("DECNET_WEBHOOK_RETRY_SCHEDULE", "0.05".into()),
        ("DECNET_SECRET_KEY", KEY.into()),
        // The service's own debug lines too.
        ("RUST_LOG", "debug".into()),
    ];
    Decnet::add_user(&env, dir.path(), "ops", "admin", "ops-password-123");
    let serve = Decnet::spawn(&["serve"], &env, dir.path());
    serve.wait_log("subscriptions loaded").await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let login = post_json(
        &http,
        format!("{base}/api/v1/auth/login"),
        None,
        &json!({"username": "ops", "password": "ops-password-123"}),
    )
    .await;
    let bearer = login["access_token"].as_str().unwrap().to_owned();
    let created = post_json(
        &http,
        format!("{base}/api/v1/webhooks/"),
        Some(&bearer),
        &json!({"name": "quiet", "url": idp.hook_url(), "topic_patterns": ["attacker.>"],
                      "headers": {"X-Api-Key": HEADER_SECRET},
                      "auth": {"type": "oauth2_client_credentials", "token_url": idp.token_url(),
                               "client_id": "decnet", "client_secret": CLIENT_SECRET}}),
    )
    .await;
    let id = uuid(&created);
    let ping = post_json(
        &http,
        format!("{base}/api/v1/webhooks/{id}/test"),
        Some(&bearer),
        &json!({}),
    )
    .await;
    assert_eq!(ping["delivered"], true, "{ping}");
    let client = nats.client().await;
    eventually(WAIT, "a delivery by the worker", || async {
        client
            .publish("attacker.observed", r#"{"id":"w","payload":{}}"#.into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        idp.accepted()
            .iter()
            .any(|h| h.event_id.as_deref() == Some("w"))
            .then_some(())
    })
    .await;
    // A chat webhook carries its token in the URL. A failed attempt's debug line
    // names the receiver without it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tokened = post_json(
        &http,
        format!("{base}/api/v1/webhooks/"),
        Some(&bearer),
        &json!({"name": "tokened", "topic_patterns": ["decoy.>"],
                      "url": format!("http://127.0.0.1:{closed}/api/webhooks/1/{URL_TOKEN}")}),
    )
    .await;
    let ping = post_json(
        &http,
        format!("{base}/api/v1/webhooks/{}/test", uuid(&tokened)),
        Some(&bearer),
        &json!({}),
    )
    .await;
    assert_eq!(ping["delivered"], false, "{ping}");
    serve.wait_log("delivery attempt failed").await;
    let log = serve.log();
    assert!(log.contains("webhook created"), "the log was captured");
    assert_no_secret("the log", &log);
    // Nor the access token the endpoint issued.
    assert!(!log.contains("tok-1"), "the access token is logged");
    assert!(!log.contains(URL_TOKEN), "a receiver URL's token is logged");
}

#[actix_rt::test]
async fn secrets_encrypt_seals_receiver_credentials_stored_in_plaintext() {
    use sea_orm::Set;
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let rx = TestReceiver::start();
    // Written without a key: stored as given.
    let mut row = decnet_webhook::db::subscriptions::new_row(
        "legacy",
        &rx.url(),
        crate::helpers::worker::SECRET,
        &["attacker.>".to_owned()],
        true,
    );
    row.headers = Set(Some(
        json!([{"name": "X-Api-Key", "value": HEADER_SECRET}]).to_string(),
    ));
    row.auth = Set(Some(json!({"type": "bearer", "token": BEARER}).to_string()));
    let id = decnet_webhook::db::subscriptions::insert(&db, row)
        .await
        .unwrap()
        .uuid;

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        ("DECNET_SECRET_KEY", KEY.to_owned()),
        ("DECNET_BUS_ENABLED", "false".to_owned()),
    ];
    let out = Decnet::run(&["secrets", "encrypt"], &env, dir.path(), "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = decnet_webhook::db::subscriptions::get(&db, &id)
        .await
        .unwrap()
        .unwrap();
    for (column, value) in [("headers", stored.headers), ("auth", stored.auth)] {
        let value = value.unwrap();
        assert_no_secret(column, &value);
        assert!(value.contains("\"enc:v2:"), "{column}: {value}");
    }

    // A worker with the key opens them and sends them.
    let worker =
        WorkerApp::start_with_db(NatsServer::start(), test_db, db, &[("secret_key", KEY)]).await;
    worker.wait_running(&[&id]).await;
    worker
        .publish("attacker.observed", br#"{"id":"sealed","payload":{}}"#)
        .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some(HEADER_SECRET));
    let bearer = format!("Bearer {BEARER}");
    assert_eq!(got[0].header("authorization"), Some(bearer.as_str()));
    worker.stop().await.unwrap();
}
