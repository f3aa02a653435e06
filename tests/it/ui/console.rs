//! The operator's console in headless Chromium against `decnet serve` (API, page and
//! worker in one process): the first-run hint, then a subscription's page drawn from
//! real deliveries (log, charts, dead letters and their bodies), a dead letter
//! replayed from the page, and a viewer's read-only view.

use std::path::Path;

use decnet_webhook::db::{dead_letters, delivery_log};
use fantoccini::Locator;
use serde_json::json;

use super::{api_create, api_login, browser::Browser, row, target_dir, wait_healthy};
use crate::helpers::{eventually, process::Decnet, NatsServer, Reply, TestDb, TestReceiver, WAIT};

fn event(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"attacker.observed","payload":{{"attacker_ip":"203.0.113.7","decky":"decky-01"}}}}"#
    )
}

async fn publish(client: &async_nats::Client, id: &str) {
    client
        .publish("attacker.observed", event(id).into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
}

/// Copy a screenshot into docs/ when asked, so test runs leave the tree clean.
fn keep_screenshot(artifacts: &Path, name: &str) {
    if std::env::var_os("DECNET_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).expect("docs/");
        std::fs::copy(artifacts.join(name), docs.join(name))
            .expect("copy the screenshot into docs/");
    }
}

/// How many of `css` the page shows now.
async fn count(b: &Browser, css: &str) -> usize {
    b.client
        .find_all(Locator::Css(css))
        .await
        .expect("query")
        .len()
}

/// Attempts spread over the day before the last two minutes: a steady rate with a
/// daily swell, latencies of tens of milliseconds with a slow tail, and an outage of
/// the receiver for a while, from a fixed pseudo-random sequence.
async fn seed_history(db: &sea_orm::DatabaseConnection, uuid: &str) {
    use decnet_webhook::db::delivery_log::LogRow;
    let now = chrono::Utc::now();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut rows = Vec::new();
    for minute in 2..(24 * 60) {
        let swell = ((minute as f64 / 240.0).sin() + 1.5) * 2.0;
        let n = swell as u64 + next(3);
        let outage = (95..110).contains(&minute) || (700..760).contains(&minute);
        for i in 0..n {
            let ok = !outage && next(100) > 1;
            let latency = if ok {
                18 + next(40) as i32 + if next(50) == 0 { 400 } else { 0 }
            } else {
                10_000
            };
            rows.push(LogRow {
                subscription: uuid.into(),
                event_id: format!("history-{minute}-{i}"),
                attempt: 1,
                at: now - chrono::Duration::minutes(minute) + chrono::Duration::seconds(i as i64),
                status: ok.then_some(200),
                latency_ms: latency,
                error: (!ok).then(|| "timed out after 10 s".to_owned()),
            });
        }
    }
    for chunk in rows.chunks(500) {
        delivery_log::insert(db, chunk)
            .await
            .expect("seed the delivery log");
    }
}

#[actix_web::test]
async fn subscription_page_in_a_real_browser() {
    let test_db = TestDb::new().await;
    let nats = NatsServer::start();
    let receiver = TestReceiver::start();
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let base = format!("http://127.0.0.1:{api_port}");
    let env = vec![
        ("DECNET_DATABASE_URL", test_db.url.clone()),
        (
            "DECNET_JWT_SECRET",
            "console-test-jwt-secret-0123456789abcdef-0123".to_owned(),
        ),
        ("DECNET_API_BIND", format!("127.0.0.1:{api_port}")),
        ("DECNET_NATS_URL", nats.url()),
        ("DECNET_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        // One attempt: a failure is a dead letter at once.
        ("DECNET_WEBHOOK_RETRY_SCHEDULE", String::new()),
        ("DECNET_WEBHOOK_CIRCUIT_THRESHOLD", "100".to_owned()),
    ];
    let dir = tempfile::tempdir().expect("working directory");

    // --- First run: no user yet. The binary says how to make one and where to go; so
    // does the login page, and only until a user exists.
    let decnet = Decnet::spawn(&["serve"], &env, dir.path());
    wait_healthy(&base, &decnet).await;
    decnet
        .wait_log(&format!(
            "no user exists yet: create the first admin with `decnet user add admin --role admin`, then sign in at {base}/"
        ))
        .await;
    let artifacts = target_dir();
    let b = Browser::launch(&artifacts).await;
    b.goto(&format!("{base}/")).await;
    let hint = b.visible("[data-testid=first-run]").await;
    let text = hint.text().await.expect("hint text");
    assert!(
        text.contains("decnet user add admin --role admin"),
        "{text}"
    );
    Decnet::add_user(&env, dir.path(), "alice", "admin", "alice-password-1");
    Decnet::add_user(&env, dir.path(), "victor", "viewer", "victor-password-1");
    b.goto(&format!("{base}/")).await;
    b.visible("[data-testid=login-form]").await;
    b.gone("[data-testid=first-run]").await;

    // --- The empty Webhooks page shows the first steps.
    b.fill("[data-testid=login-username]", "alice").await;
    b.fill("[data-testid=login-password]", "alice-password-1")
        .await;
    b.click("[data-testid=login-submit]").await;
    let steps = b.visible("[data-testid=first-steps]").await;
    let steps = steps.text().await.expect("steps");
    assert!(
        steps.contains("New webhook") && steps.contains("FIRE"),
        "{steps}"
    );

    // --- Real deliveries: ordered, so a fence event proves everything before it is done.
    let token = api_login(&base, "alice", "alice-password-1").await;
    let created = api_create(
        &base,
        &token,
        json!({"name": "siem", "url": receiver.url(), "simple_events": ["AttackerDetail"], "ordered": true}),
    )
    .await;
    let uuid = created["uuid"].as_str().expect("uuid").to_owned();
    let bus = nats.client().await;
    let mut probe = 0;
    eventually(WAIT, "the worker to consume", || {
        probe += 1;
        let (bus, id) = (bus.clone(), format!("probe-{probe}"));
        let receiver = &receiver;
        async move {
            publish(&bus, &id).await;
            (receiver.count() >= 1).then_some(())
        }
    })
    .await;
    for i in 0..4 {
        publish(&bus, &format!("good-{i}")).await;
    }
    publish(&bus, "fence").await;
    eventually(WAIT, "the fence event", || async {
        receiver
            .requests()
            .iter()
            .any(|r| r.header("x-decnet-event-id") == Some("fence"))
            .then_some(())
    })
    .await;
    let delivered = receiver.count();
    receiver.set_default(Reply::Status(500));
    for i in 0..3 {
        publish(&bus, &format!("bad-{i}")).await;
    }
    let db = test_db.connect().await;
    eventually(
        WAIT,
        "three dead letters and every attempt logged",
        || async {
            let (_, dead) = dead_letters::list(&db, &uuid, 10, 0).await.ok()?;
            let (_, logged) = delivery_log::list(&db, &uuid, None, 1, 0).await.ok()?;
            (dead == 3 && logged == delivered as u64 + 3).then_some(())
        },
    )
    .await;

    // --- The subscription's page, opened from its row.
    b.click(&format!("{} [data-testid=row-open]", row("siem")))
        .await;
    b.visible("[data-testid=detail-view]").await;
    b.text_is("[data-testid=detail-name]", "siem").await;
    b.text_is("[data-testid=detail-url]", &receiver.url()).await;
    // The log: newest first, every attempt.
    b.text_is("[data-testid=log-total]", &format!("({})", delivered + 3))
        .await;
    let statuses: Vec<String> = {
        let mut out = Vec::new();
        for e in b
            .client
            .find_all(Locator::Css("[data-testid=log-status]"))
            .await
            .expect("statuses")
        {
            out.push(e.text().await.expect("status"));
        }
        out
    };
    assert_eq!(
        &statuses[..3],
        ["500", "500", "500"],
        "newest first: {statuses:?}"
    );
    assert!(statuses[3..].iter().all(|s| s == "200"), "{statuses:?}");
    // Filtered by outcome.
    b.visible("[data-testid=log-filter]")
        .await
        .select_by_value("failed")
        .await
        .expect("filter failed");
    b.text_is("[data-testid=log-total]", "(3)").await;
    b.until("only failed attempts", || async {
        let errors = b
            .client
            .find_all(Locator::Css("[data-testid=log-entry]"))
            .await?;
        Ok((errors.len() == 3).then_some(()))
    })
    .await;
    let error = b
        .text("[data-testid=log-error]")
        .await
        .expect("error")
        .unwrap_or_default();
    assert!(error.contains("500"), "{error}");

    // The charts, drawn from those deliveries.
    let totals = b
        .text_where(
            "[data-testid=chart-hour-totals]",
            "the hour's totals",
            |t| {
                t.starts_with(&format!(
                    "{delivered} delivered · 3 failed · 3 dead-lettered · p50 "
                ))
            },
        )
        .await;
    assert!(totals.contains("p99 "), "{totals}");
    let drawn = b
        .client
        .execute(
            "const bars = [...document.querySelectorAll('#chart-hour [data-testid=chart-bar]')];
             const sum = (k) => bars.reduce((n, g) => n + Number(g.dataset[k]), 0);
             const tall = [...document.querySelectorAll('#chart-hour rect.bar-delivered')]
                 .filter((r) => Number(r.getAttribute('height')) > 0).length;
             const p50 = document.querySelector('#chart-hour [data-testid=line-p50]').getAttribute('d');
             return [bars.length, sum('delivered'), sum('failed'), sum('dead'), tall, p50];",
            vec![],
        )
        .await
        .expect("read the chart");
    assert_eq!(drawn[0], 60, "one bar per minute: {drawn}");
    assert_eq!(drawn[1], delivered, "{drawn}");
    assert_eq!(
        (drawn[2].as_u64(), drawn[3].as_u64()),
        (Some(3), Some(3)),
        "{drawn}"
    );
    assert!(drawn[4].as_u64() >= Some(1), "{drawn}");
    assert!(
        drawn[5]
            .as_str()
            .is_some_and(|d| d.starts_with('M') && d != "M0,0"),
        "{drawn}"
    );
    b.visible("[data-testid=chart-day] [data-testid=chart-counts]")
        .await;
    // The ledger: every event the subscription received, accounted for (the worker
    // writes its counts every few seconds; the page reads them on each refresh).
    let received = delivered + 3;
    let want: Vec<String> = [received, 0, delivered, 3, 0, 0, 0]
        .iter()
        .map(ToString::to_string)
        .collect();
    b.until("the ledger to account for every event", || async {
        let cells = b
            .client
            .execute(
                "const row = document.querySelector('[data-testid=ledger-table] tbody tr');
                 return row ? [...row.querySelectorAll('td.num')].map((td) => td.textContent) : [];",
                vec![],
            )
            .await?;
        let cells: Vec<String> = cells
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Ok((cells == want).then_some(()))
    })
    .await;
    b.visible("[data-testid=log-filter]")
        .await
        .select_by_value("")
        .await
        .expect("filter none");

    // Dead letters: reason, attempts, the body as text and as hex.
    b.text_is("[data-testid=dead-total]", "(3)").await;
    let reason = b
        .text("[data-testid=dead-reason]")
        .await
        .expect("reason")
        .unwrap_or_default();
    assert_eq!(reason, "retries_exhausted");
    b.click("tr[data-event-id=\"bad-0\"] [data-testid=dead-body-toggle]")
        .await;
    let body = b
        .visible("[data-testid=dead-body-text]")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("\"id\":\"bad-0\"") && body.contains("203.0.113.7"),
        "{body}"
    );
    b.click("[data-testid=dead-body-mode]").await;
    let hex = b
        .visible("[data-testid=dead-body-hex]")
        .await
        .text()
        .await
        .expect("hex");
    assert!(hex.starts_with("00000000  7b 22 69 64 22 3a"), "{hex}");
    b.click("[data-testid=dead-body-mode]").await;
    b.visible("[data-testid=dead-body-text]").await;

    // --- For the pictures: a day of history before these deliveries, as a busy
    // subscription has; the page picks it up on its next refresh.
    seed_history(&db, &uuid).await;
    // The day's chart is read once a minute: a reload reads it now.
    b.goto(&format!("{base}/#/webhooks/{uuid}")).await;
    b.client.refresh().await.expect("reload");
    b.click("tr[data-event-id=\"bad-0\"] [data-testid=dead-body-toggle]")
        .await;
    b.visible("[data-testid=dead-body-text]").await;
    b.text_where(
        "[data-testid=chart-day-totals]",
        "the day chart with the history",
        |t| !t.starts_with(&format!("{delivered} delivered")),
    )
    .await;
    b.client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scroll");
    b.screenshot(&artifacts.join("subscription-page.png")).await;
    keep_screenshot(&artifacts, "subscription-page.png");
    b.client
        .execute(
            "document.querySelector('[data-testid=dead-letters]').scrollIntoView()",
            vec![],
        )
        .await
        .expect("scroll");
    b.screenshot(&artifacts.join("dead-letters.png")).await;
    keep_screenshot(&artifacts, "dead-letters.png");

    // --- Replay one from the page, then the rest: the receiver takes them again.
    receiver.set_default(Reply::Status(200));
    b.click("tr[data-event-id=\"bad-1\"] [data-testid=dead-replay]")
        .await;
    b.text_is("[data-testid=replay-status]", "Replay done: 1 delivered.")
        .await;
    b.text_is("[data-testid=dead-total]", "(2)").await;
    assert_eq!(count(&b, "tr[data-event-id=\"bad-1\"]").await, 0);
    b.click("[data-testid=replay-all]").await;
    b.text_is(
        "[data-testid=replay-status]",
        "Replay done: 2 delivered. None left.",
    )
    .await;
    b.text_is("[data-testid=dead-total]", "(0)").await;
    let ids: Vec<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.header("x-decnet-event-id").map(str::to_owned))
        .collect();
    let replayed: Vec<&str> = ids[ids.len() - 3..].iter().map(String::as_str).collect();
    assert_eq!(replayed, ["bad-1", "bad-0", "bad-2"]);
    let (_, left) = dead_letters::list(&db, &uuid, 10, 0).await.expect("query");
    assert_eq!(left, 0);

    // --- A viewer sees the same page, read-only.
    b.click("[data-testid=sign-out]").await;
    b.visible("[data-testid=login-view]").await;
    b.fill("[data-testid=login-username]", "victor").await;
    b.fill("[data-testid=login-password]", "victor-password-1")
        .await;
    b.click("[data-testid=login-submit]").await;
    b.text_is("[data-testid=session-role]", "VIEWER").await;
    b.visible("[data-testid=detail-view]").await;
    b.text_is("[data-testid=detail-name]", "siem").await;
    // The receiver's path is withheld from viewers.
    b.text_is(
        "[data-testid=detail-url]",
        &receiver.url().replace("/hook", "/…"),
    )
    .await;
    b.until("the viewer's log", || async {
        Ok((b
            .client
            .find_all(Locator::Css("[data-testid=log-entry]"))
            .await?
            .len()
            >= 3)
            .then_some(()))
    })
    .await;
    b.visible("[data-testid=chart-hour] [data-testid=chart-counts]")
        .await;
    assert!(!b.shows("[data-testid=replay-controls]").await);
    assert_eq!(count(&b, "[data-testid=dead-replay]").await, 0);
    b.click("[data-testid=detail-back]").await;
    b.visible("[data-testid=readonly-note]").await;
    b.visible(&row("siem")).await;
    for action in ["edit-button", "delete-button", "fire-button"] {
        assert_eq!(
            count(&b, &format!("[data-testid={action}]")).await,
            0,
            "a viewer is offered {action}"
        );
    }
    let rate = b
        .text_where("[data-testid=delivery-rate]", "the header's rate", |t| {
            t.contains("deliveries/s")
        })
        .await;
    assert!(rate.contains("over the last 5 min"), "{rate}");

    b.close().await;
    drop(decnet);
}
