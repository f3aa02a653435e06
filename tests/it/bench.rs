//! Every benchmark scenario at its small size, through the built `decnet-bench`: each
//! completes and counts correctly (every event delivered once). No timing asserted.

use std::process::Command;

use serde_json::Value;

/// `decnet-bench <scenario> --size small`, and its JSON line.
fn smoke(scenario: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_decnet-bench"))
        .args([scenario, "--size", "small"])
        .output()
        .expect("decnet-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It fails when a count does not hold or the scenario could not run.
    assert!(
        out.status.success(),
        "{scenario}: {}\n{stdout}\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{scenario}: one JSON line\n{stdout}\n{stderr}"
    );
    let line: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(line["scenario"], scenario, "{line}");
    assert_eq!(line["counts_ok"], true, "{line}");
    assert!(line.get("failed_checks").is_none(), "{line}");
    line
}

#[test]
fn raw_counts_every_post() {
    smoke("raw");
}

#[test]
fn throughput_delivers_every_event_once() {
    smoke("throughput");
}

#[test]
fn fanout_delivers_every_event_to_every_subscription_once() {
    smoke("fanout");
}

#[test]
fn filters_deliver_what_passes_to_every_subscription_once() {
    let line = smoke("filters");
    // The bench's filter passes every event: the filtered run delivers them all.
    assert_eq!(
        line["deliveries"],
        line["subscriptions"].as_u64().unwrap() * line["events"].as_u64().unwrap(),
        "{line}"
    );
    assert!(
        line["filter"].as_str().is_some_and(|f| !f.is_empty()),
        "{line}"
    );
}

#[test]
fn latency_delivers_every_paced_event_once() {
    smoke("latency");
}

#[test]
fn isolation_delivers_to_the_healthy_beside_a_dead_receiver() {
    smoke("isolation");
}

#[test]
fn scale_reloads_touch_only_what_changed() {
    smoke("scale");
}

#[test]
fn durable_delivers_every_event_once_through_jetstream() {
    smoke("durable");
}

#[test]
fn ratelimit_delivers_every_event_once_under_the_limit() {
    let line = smoke("ratelimit");
    // The rate target is reported, not asserted: a timing on a shared runner.
    assert!(line["targets_ok"].is_boolean(), "{line}");
    assert!(line["achieved_per_s"].is_number(), "{line}");
}

#[test]
fn templates_deliver_every_event_once_beside_an_endless_template() {
    let line = smoke("templates");
    assert!(line["ratio_to_raw_shape"].is_number(), "{line}");
    assert!(line["endless_dead_lettered"].is_number(), "{line}");
}

#[test]
fn cluster_counts_every_event_through_a_node_kill_and_a_worker_kill() {
    let line = smoke("cluster");
    assert_eq!(line["lost"], 0, "{line}");
    assert_eq!(line["crash_lost"], 0, "{line}");
}

#[test]
fn stats_aggregates_a_filled_delivery_log() {
    let line = smoke("stats");
    assert_eq!(line["rows"], 20_000, "{line}");
    for query in ["hour_by_minute", "day_by_30_minutes", "all_last_5_minutes"] {
        assert!(line["sqlite"][query]["median_ms"].is_number(), "{line}");
    }
    // The busy subscription holds half the rows, spread over the day; the window (whole
    // 30-minute steps ending with the current one) covers all but up to 30 minutes of it.
    let day = line["sqlite"]["day_by_30_minutes"]["attempts_counted"]
        .as_u64()
        .unwrap_or(0);
    assert!((9_750..=10_000).contains(&day), "{line}");
}

#[test]
fn burst_delivers_every_event_at_the_default_settings() {
    let line = smoke("burst");
    assert_eq!(line["delivered"], line["events"], "{line}");
    assert_eq!(line["dead_lettered"], 0, "{line}");
    assert_eq!(line["dropped"], 0, "{line}");
    assert!(line["rss_peak_mib"].is_number(), "{line}");
    assert!(line["worker_cpu_us_per_delivery"].is_number(), "{line}");
}
