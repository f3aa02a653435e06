//! Payload shapes against the golden bodies of tests/vectors/shapes.json (the
//! events of envelopes.json, each shape as docs/shapes.md documents it).

use std::time::Duration;

use decnet_webhook::{
    domain::Event,
    shape::{
        sandbox::{Sandbox, TemplateLimits},
        Shape,
    },
};
use serde_json::Value;

fn text(v: &Value) -> String {
    v.as_str().expect("a string").to_owned()
}

fn events() -> Vec<Event> {
    let doc: Value = serde_json::from_str(include_str!("../../vectors/envelopes.json"))
        .expect("vectors are JSON");
    doc["vectors"]
        .as_array()
        .expect("a vectors list")
        .iter()
        .map(|v| {
            let e = &v["event"];
            Event::new(
                text(&e["id"]),
                text(&e["topic"]),
                text(&e["ts"]),
                text(&e["type"]),
                e["payload"].clone(),
            )
        })
        .collect()
}

fn golden() -> Value {
    serde_json::from_str(include_str!("../../vectors/shapes.json")).expect("golden file is JSON")
}

/// The sandbox every template test renders in: the built `decnet`, default limits.
fn sandbox() -> Sandbox {
    crate::helpers::use_built_sandbox();
    Sandbox::new(TemplateLimits {
        timeout: Duration::from_secs(10),
        memory_mib: 128,
    })
}

#[actix_rt::test]
async fn every_shape_renders_the_documented_body_for_every_vector() {
    let golden = golden();
    let expected = golden["vectors"].as_array().expect("a vectors list");
    let events = events();
    assert_eq!(events.len(), expected.len(), "one golden entry per vector");
    let shapes = [
        ("slack", Shape::from_row("slack", None).expect("slack")),
        (
            "thehive",
            Shape::from_row("thehive", None).expect("thehive"),
        ),
    ];
    let template = golden["template"].as_str().expect("the golden template");
    let envelopes: Vec<_> = events.iter().map(|e| e.body.clone()).collect();
    let templated = sandbox()
        .render(template, &envelopes)
        .await
        .expect("the sandbox runs the golden template");
    for ((event, want), templated) in events.iter().zip(expected).zip(templated) {
        assert_eq!(
            event.id,
            text(&want["id"]),
            "golden entries follow the vectors"
        );
        let raw = Shape::from_row("raw", None).expect("raw");
        assert_eq!(raw.render(event).expect("raw renders"), event.body);
        let templated = templated.unwrap_or_else(|e| panic!("template of {}: {e}", event.id));
        let rendered = shapes
            .iter()
            .map(|(name, shape)| {
                let body = shape
                    .render(event)
                    .unwrap_or_else(|e| panic!("{name} of {}: {e}", event.id));
                (*name, body)
            })
            .chain([("template", templated)]);
        for (name, body) in rendered {
            assert_eq!(
                std::str::from_utf8(&body).expect("UTF-8"),
                text(&want[name]),
                "{name} of {}",
                event.id
            );
        }
    }
}

#[test]
fn slack_and_thehive_bodies_have_their_receivers_fields() {
    for event in events() {
        let slack: Value =
            serde_json::from_slice(&Shape::Slack.render(&event).expect("slack")).expect("JSON");
        let text = slack["text"].as_str().expect("a text field");
        assert!(text.starts_with(&format!("[DECNET] {}", event.topic)));
        assert_eq!(slack.as_object().map(|o| o.len()), Some(1));

        let alert: Value =
            serde_json::from_slice(&Shape::TheHive.render(&event).expect("thehive")).expect("JSON");
        assert_eq!(alert["source"], "decnet");
        assert_eq!(alert["sourceRef"], event.id.as_str());
        assert!(alert["date"]
            .as_i64()
            .is_some_and(|ms| ms > 1_700_000_000_000));
        assert!((1..=4).contains(&alert["severity"].as_i64().unwrap_or(0)));
        for field in ["type", "title", "description"] {
            assert!(
                alert[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field}"
            );
        }
    }
}
