//! Templates that cannot fit, stored before the limits existed (so never checked on
//! save), in the worker: each event becomes a `render_failed` dead letter naming the
//! limit, other subscriptions (raw and templated) deliver while the worst one is
//! still rendering, and the worker's memory (read from /proc) stays where it was.

use std::time::Duration;

use decnet_webhook::db::{dead_letters, subscriptions};
use sea_orm::Set;

use crate::helpers::{
    eventually,
    process::rss_mib,
    templates,
    worker::{WorkerApp, SECRET},
    TestReceiver, WAIT,
};

const TIMEOUT_MS: &str = "5000";
const MEMORY_MIB: &str = "64";
/// What the worker's process may grow by meanwhile.
const GROWTH_MIB: u64 = 64;

/// A subscription on `subject` with this template (or raw without), running.
async fn subscribe(
    app: &WorkerApp,
    name: &str,
    url: &str,
    subject: &str,
    template: Option<&str>,
) -> String {
    let mut row = subscriptions::new_row(name, url, SECRET, &[subject.to_owned()], true);
    if let Some(template) = template {
        row.shape = Set("template".into());
        row.template = Set(Some(template.to_owned()));
    }
    app.subscribe_row(row).await
}

async fn dead_letter(app: &WorkerApp, uuid: &str) -> Option<dead_letters::StoredDeadLetter> {
    let (rows, _) = dead_letters::list(&app.db, uuid, 10, 0).await.ok()?;
    rows.into_iter().next()
}

#[actix_rt::test]
async fn templates_that_cannot_fit_are_dead_lettered_and_hold_up_no_one() {
    let app = WorkerApp::start(&[
        ("webhook_template_timeout_ms", TIMEOUT_MS),
        ("webhook_template_memory_mib", MEMORY_MIB),
        ("webhook_circuit_threshold", "1"),
    ])
    .await;
    let me = std::process::id();
    let before = rss_mib(me);
    let bad_rx = TestReceiver::start();
    let raw_rx = TestReceiver::start();
    let good_rx = TestReceiver::start();
    let endless = subscribe(
        &app,
        "endless",
        &bad_rx.url(),
        "attacker.endless",
        Some(&templates::endless()),
    )
    .await;
    subscribe(&app, "raw", &raw_rx.url(), "attacker.good", None).await;
    subscribe(
        &app,
        "good",
        &good_rx.url(),
        "attacker.good",
        Some(templates::GOOD),
    )
    .await;

    // The endless template starts rendering first; the others' events come after.
    app.publish("attacker.endless", br#"{"id":"slow-1","payload":{}}"#)
        .await;
    for i in 0..5 {
        let body = format!(r#"{{"id":"good-{i}","payload":{{}}}}"#);
        app.publish("attacker.good", body.as_bytes()).await;
    }
    raw_rx.wait_for(5, WAIT).await;
    let shaped = good_rx.wait_for(5, WAIT).await;
    assert!(
        dead_letter(&app, &endless).await.is_none(),
        "the other subscriptions delivered while the endless template was still rendering"
    );
    // Unordered delivery: the bodies, in any order.
    let mut bodies: Vec<serde_json::Value> = shaped.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["id"].as_str().map(str::to_owned));
    let expected: Vec<serde_json::Value> = (0..5)
        .map(|i| serde_json::json!({"id": format!("good-{i}"), "topic": "attacker.good"}))
        .collect();
    assert_eq!(bodies, expected);

    // Stopped at the time limit: one dead letter saying so, nothing sent.
    let letter = eventually(WAIT, "the endless template's dead letter", || async {
        dead_letter(&app, &endless).await
    })
    .await;
    assert_eq!(letter.event_id, "slow-1");
    assert_eq!(letter.reason, "render_failed");
    let error = letter.error.unwrap_or_default();
    assert_eq!(
        error,
        format!("template took longer than {TIMEOUT_MS} ms to render and was stopped")
    );

    // The memory attacks, each stopped at the memory limit.
    let attacks = [
        ("constant-fold", templates::constant_fold()),
        ("process-killer", templates::process_killer()),
        ("doubling", templates::doubling()),
    ];
    for (name, template) in &attacks {
        let subject = format!("attacker.{name}");
        let uuid = subscribe(&app, name, &bad_rx.url(), &subject, Some(template)).await;
        let body = format!(r#"{{"id":"{name}-1","payload":{{}}}}"#);
        app.publish(&subject, body.as_bytes()).await;
        let letter = eventually(WAIT, "the dead letter", || async {
            dead_letter(&app, &uuid).await
        })
        .await;
        assert_eq!(letter.reason, "render_failed", "{name}");
        assert_eq!(
            letter.error.as_deref(),
            Some(&*format!(
                "template needed more than {MEMORY_MIB} MiB of memory and was stopped"
            )),
            "{name}"
        );
        let rss = rss_mib(me);
        assert!(
            rss < before + GROWTH_MIB,
            "{name}: the worker grew from {before} to {rss} MiB"
        );
    }
    assert_eq!(bad_rx.count(), 0, "nothing of theirs was sent");

    // A render failure is not the receiver's: no circuit tripped (threshold 1), every
    // subscription still runs, and the good ones keep delivering.
    assert_eq!(app.status().await.running.len(), 6);
    assert_eq!(app.status().await.restarts, 0);
    app.publish("attacker.good", br#"{"id":"good-5","payload":{}}"#)
        .await;
    raw_rx.wait_for(6, WAIT).await;
    good_rx.wait_for(6, WAIT).await;
    app.stop().await.unwrap();
}

/// A sandbox process killed from outside between requests (the OOM killer, an
/// operator) is replaced: the next render still succeeds.
#[actix_rt::test]
async fn a_sandbox_process_killed_between_renders_is_replaced() {
    use decnet_webhook::shape::sandbox::{Sandbox, TemplateLimits};
    use nix::{
        sys::signal::{kill, Signal},
        unistd::Pid,
    };
    crate::helpers::use_built_sandbox();
    let sandbox = Sandbox::new(TemplateLimits {
        timeout: Duration::from_secs(10),
        memory_mib: 64,
    });
    let envelope = bytes::Bytes::from_static(
        br#"{"id":"k-1","payload":{},"topic":"attacker.x","ts":"t","type":"","v":1}"#,
    );
    let render = || sandbox.render(templates::GOOD, std::slice::from_ref(&envelope));
    let first = render().await.expect("renders");
    assert_eq!(
        &first[0].as_ref().unwrap()[..],
        br#"{"id":"k-1","topic":"attacker.x"}"#
    );
    let sandboxes = crate::helpers::process::children(std::process::id());
    assert_eq!(sandboxes.len(), 1, "one sandbox process started");
    kill(Pid::from_raw(sandboxes[0] as i32), Signal::SIGKILL).unwrap();
    // Dead (a zombie until the sandbox notices) before the next request.
    let state = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(") ").next().and_then(|s| s.chars().next())
    };
    eventually(WAIT, "the sandbox process dead", || async {
        matches!(state(sandboxes[0]), Some('Z') | None).then_some(())
    })
    .await;
    let again = render().await.expect("renders on a fresh process");
    assert_eq!(again, first);
}
