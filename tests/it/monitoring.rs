//! docs/monitoring: every metric the alert rules and the Grafana dashboard use is one
//! a real worker exports on `/metrics`, so a renamed metric cannot leave them silently
//! watching nothing. (CI also runs `promtool check rules` on the rules.)

use std::{collections::BTreeSet, path::Path};

use serde_json::{json, Value};

use crate::helpers::{eventually, worker::WorkerApp, Reply, TestReceiver, WAIT};

const RULES: &str = "docs/monitoring/decnet-webhook.rules.yml";
const DASHBOARD: &str = "docs/monitoring/grafana-dashboard.json";

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every `decnet_…` metric name in `text`, with a histogram's `_bucket`, `_sum` and
/// `_count` series named by the histogram.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("decnet_") {
        let start = i + found;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if boundary {
            let name = &text[start..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(name.to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

/// The PromQL of every panel target of the dashboard.
fn dashboard_queries(dashboard: &Value) -> String {
    let mut out = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push_str(target["expr"].as_str().expect("expr"));
            out.push('\n');
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        out.push_str(variable["definition"].as_str().unwrap_or_default());
        out.push('\n');
    }
    out
}

#[actix_rt::test]
async fn the_rules_and_the_dashboard_use_only_exported_metrics() {
    let rules = read(RULES);
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "decnet-webhook");
    let used: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard_queries(&dashboard)))
        .collect();
    // What the alerts are meant to watch.
    for alert in [
        "DecnetWebhookCircuitTripped",
        "DecnetWebhookDeadLettersRising",
        "DecnetWebhookBusDisconnected",
        "DecnetWebhookQueueNearBound",
        "DecnetWebhookDeliveriesFailing",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "no {alert}");
    }
    assert!(used.len() >= 10, "{used:?}");

    // A real worker that delivers, fails, dead-letters and trips, so every series exists.
    let app = WorkerApp::start(&[
        ("metrics_bind", "127.0.0.1:0"),
        ("webhook_circuit_threshold", "2"),
    ])
    .await;
    let ok_rx = TestReceiver::start();
    let bad_rx = TestReceiver::start();
    bad_rx.set_default(Reply::Status(500));
    let _ok = app.subscribe("ok", &ok_rx.url(), &["attacker.>"]).await;
    let bad = app.subscribe("bad", &bad_rx.url(), &["decky.>"]).await;
    app.publish("attacker.observed", br#"{"id":"ok-1","payload":{}}"#)
        .await;
    ok_rx.wait_for(1, WAIT).await;
    for id in ["bad-1", "bad-2"] {
        let body = json!({"id": id, "payload": {}}).to_string();
        app.publish("decky.d1.state", body.as_bytes()).await;
    }
    eventually(WAIT, "the trip written", || async {
        (!app.row(&bad).await.enabled).then_some(())
    })
    .await;
    let url = app.metrics_url();
    let exported = eventually(WAIT, "trips and dead letters on /metrics", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (text.contains("decnet_webhook_circuit_trips_total{")
            && text.contains("decnet_webhook_dead_letters_total{"))
        .then(|| metric_names(&text))
    })
    .await;
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "used by docs/monitoring but not exported: {missing:?} (exported: {exported:?})"
    );
}
