//! A rate limit stored before its bounds were checked neither panics nor silences
//! the subscription: it runs at the slowest rate.

use decnet_webhook::db::subscriptions;
use sea_orm::Set;

use crate::helpers::{
    eventually,
    worker::{WorkerApp, SECRET},
    TestReceiver, WAIT,
};

/// The value of `metric{subscription="uuid"}` in the process's metrics.
fn metric(name: &str, uuid: &str) -> Option<f64> {
    let text = decnet_webhook::metrics::global().render().unwrap();
    let prefix = format!("{name}{{subscription=\"{uuid}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[actix_rt::test]
async fn a_stored_rate_of_1e_minus_30_runs_slowly_and_never_stops_the_subscription() {
    let app = WorkerApp::start(&[]).await;
    let rx = TestReceiver::start();
    let mut row =
        subscriptions::new_row("slow", &rx.url(), SECRET, &["attacker.>".to_owned()], true);
    row.rate_limit_per_sec = Set(Some(1e-30));
    let uuid = app.subscribe_row(row).await;

    // The first token is there at once; the second event waits for the next one
    // (the slowest rate: one per 1,000 s) instead of panicking the actor.
    app.publish_events("r", 2).await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-decnet-event-id"), Some("r-0"));
    eventually(WAIT, "the second event queued", || async {
        (metric("decnet_webhook_queue_depth", &uuid) == Some(1.0)).then_some(())
    })
    .await;
    let status = app.status().await;
    assert!(status.running.contains_key(&uuid), "still running");
    assert_eq!(status.restarts, 0, "it never stopped");
    assert_eq!(rx.count(), 1);
    app.stop().await.unwrap();
}
