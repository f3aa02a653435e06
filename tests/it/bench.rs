//! Every benchmark scenario at its small size, through the library entry point: each
//! completes and counts correctly (every event delivered once). No timing asserted.

use decnet_webhook::bench::{self, Scenario, Size};

fn smoke(scenario: Scenario) -> serde_json::Value {
    // `bench::run` builds an actix system of its own, so it runs on a plain thread.
    let report =
        bench::run(scenario, Size::Small).unwrap_or_else(|e| panic!("{scenario} did not run: {e}"));
    assert!(!report.checks.is_empty(), "{scenario} checked nothing");
    let failed: Vec<_> = report.failed_checks().collect();
    assert!(failed.is_empty(), "{scenario}: {failed:?}");
    let line = report.json();
    assert_eq!(line["scenario"], scenario.name());
    assert_eq!(line["counts_ok"], true);
    line
}

#[test]
fn raw_counts_every_post() {
    smoke(Scenario::Raw);
}

#[test]
fn throughput_delivers_every_event_once() {
    smoke(Scenario::Throughput);
}

#[test]
fn fanout_delivers_every_event_to_every_subscription_once() {
    smoke(Scenario::Fanout);
}

#[test]
fn latency_delivers_every_paced_event_once() {
    smoke(Scenario::Latency);
}

#[test]
fn isolation_delivers_to_the_healthy_beside_a_dead_receiver() {
    smoke(Scenario::Isolation);
}

#[test]
fn scale_reloads_touch_only_what_changed() {
    smoke(Scenario::Scale);
}

#[test]
fn durable_delivers_every_event_once_through_jetstream() {
    smoke(Scenario::Durable);
}

#[test]
fn ratelimit_delivers_every_event_once_under_the_limit() {
    let line = smoke(Scenario::Ratelimit);
    // The rate target is reported, not asserted: a timing on a shared runner.
    assert!(line["targets_ok"].is_boolean(), "{line}");
    assert!(line["achieved_per_s"].is_number(), "{line}");
}
