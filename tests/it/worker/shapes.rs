//! Payload shapes against the golden bodies of tests/vectors/shapes.json (the
//! events of envelopes.json, each shape as docs/shapes.md documents it).

use std::time::Duration;

use decnet_webhook::{
    domain::Event,
    shape::{
        sandbox::{Sandbox, TemplateLimits},
        Destination, Shape,
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

/// Every shape rendered here, by name: the destinations with default settings
/// (sentinel's name only its rule and stream, which are not in the body).
pub fn shapes() -> Vec<(&'static str, Shape)> {
    let none = Destination::default();
    let sentinel = Destination {
        dcr_immutable_id: Some(format!("dcr-{}", "0".repeat(32))),
        stream: Some("Custom-DecnetEvents_CL".into()),
        ..Default::default()
    };
    [
        ("slack", &none),
        ("thehive", &none),
        ("splunk_hec", &none),
        ("elastic_bulk", &none),
        ("sentinel", &sentinel),
        ("pagerduty", &none),
        ("teams", &none),
        ("discord", &none),
    ]
    .into_iter()
    .map(|(name, settings)| (name, Shape::from_row(name, None, settings).expect(name)))
    .collect()
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
    let shapes = shapes();
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
        let raw = Shape::from_row("raw", None, &Destination::default()).expect("raw");
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

/// What an attacker can type into a decoy (a username, a command, a user agent)
/// reaches every shape; none of it may act in the receiver's UI: no mention, no
/// link, no markup, no broken line, within each receiver's limits.
#[test]
fn hostile_strings_are_inert_in_every_shape() {
    use decnet_webhook::shape::discord;
    let hostile = [
        "@everyone @here <@123456> <@&987> <#42> <!channel> <!here>",
        "[click me](https://evil.example/x) ![img](https://evil.example/i.png) <https://evil.example>",
        "**bold** __under__ ~~strike~~ ||spoiler|| `code` ```block``` > quote # heading",
        "<script>alert(1)</script><img src=x onerror=alert(1)>&amp;&lt;",
        "line1\nline2\r\n\u{0}\u{1b}[31mred\u{7f}\u{85}",
        "\\*escaped\\* \\\\ back",
    ];
    let long = "A".repeat(2_000) + "@everyone";
    let mut payload = serde_json::Map::new();
    payload.insert("attacker_ip".into(), "203.0.113.9".into());
    payload.insert("decky".into(), hostile[0].into());
    payload.insert("service".into(), hostile[1].into());
    payload.insert("score".into(), 95.into());
    for (i, h) in hostile.iter().enumerate() {
        payload.insert(format!("{h}{i}"), (*h).into());
    }
    for i in 0..40 {
        payload.insert(format!("k{i:02}"), long.clone().into());
    }
    let event = Event::new(
        hostile[0].into(),
        "attacker.observed".into(),
        "2026-04-24T10:00:00+00:00".into(),
        hostile[2].into(),
        Value::Object(payload),
    );
    // Text a chat receiver renders, gathered from every string of the body except
    // the envelope copies (data, not text, in Splunk, Elastic, Sentinel, PagerDuty).
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    for (name, shape) in shapes() {
        let body = shape
            .render(&event)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let docs: Vec<Value> = if name == "elastic_bulk" {
            assert!(body.ends_with(b"\n"), "{name}: a final newline");
            std::str::from_utf8(&body)
                .expect("UTF-8")
                .lines()
                .map(|l| serde_json::from_str(l).expect("each line is JSON"))
                .collect()
        } else {
            vec![serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"))]
        };
        for doc in &docs {
            // The envelope rides whole where the target stores data: it must be
            // the event exactly, strings intact.
            let copy = match name {
                "splunk_hec" => doc.pointer("/event/payload"),
                "elastic_bulk" => doc.pointer("/decnet/payload"),
                "pagerduty" => doc.pointer("/payload/custom_details/payload"),
                "sentinel" => doc.pointer("/0/Payload"),
                _ => None,
            };
            if let Some(copy) = copy {
                assert!(copy == &event.payload, "{name}: the payload rides intact");
            }
        }
        match name {
            "discord" => {
                let doc = &docs[0];
                assert_eq!(doc["allowed_mentions"], serde_json::json!({"parse": []}));
                let embed = &doc["embeds"][0];
                let fields = embed["fields"].as_array().expect("fields");
                assert!(fields.len() <= discord::MAX_FIELDS, "{}", fields.len());
                let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
                assert!(chars(&doc["content"]) <= discord::MAX_CONTENT_CHARS);
                assert!(chars(&embed["title"]) <= discord::MAX_TITLE_CHARS);
                assert!(chars(&embed["description"]) <= discord::MAX_DESCRIPTION_CHARS);
                let mut total = chars(&embed["title"]) + chars(&embed["description"]);
                for f in fields {
                    assert!(chars(&f["name"]) <= discord::MAX_FIELD_NAME_CHARS);
                    assert!(chars(&f["value"]) <= discord::MAX_FIELD_VALUE_CHARS);
                    total += chars(&f["name"]) + chars(&f["value"]);
                }
                assert!(
                    total <= 6000,
                    "an embed holds 6000 characters at most: {total}"
                );
                let mut text = Vec::new();
                strings(doc, &mut text);
                assert_inert(name, &text);
            }
            "teams" => {
                let mut text = Vec::new();
                strings(&docs[0]["attachments"][0]["content"]["body"], &mut text);
                assert_inert(name, &text);
            }
            "pagerduty" => {
                let p = &docs[0]["payload"];
                let summary = p["summary"].as_str().expect("summary");
                assert!(summary.chars().count() <= 1024);
                assert!(!summary.chars().any(char::is_control), "{summary:?}");
                assert!(docs[0]["dedup_key"].as_str().expect("key").chars().count() <= 255);
                assert_eq!(p["severity"], "critical", "a score of 95");
                assert!(
                    docs[0].get("routing_key").is_none(),
                    "never in the stored body"
                );
            }
            _ => {}
        }
    }
}

/// No unescaped markdown, mention or tag in text a chat app renders.
fn assert_inert(name: &str, text: &[&str]) {
    for s in text {
        let chars: Vec<char> = s.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            // Escaped when an odd number of backslashes stands before it.
            let slashes = chars[..i].iter().rev().take_while(|c| **c == '\\').count();
            let escaped = slashes % 2 == 1;
            if matches!(
                c,
                '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']' | '(' | ')' | '#'
            ) {
                assert!(escaped, "{name}: unescaped {c:?} in {s:?}");
            }
            if *c == '@' {
                assert_eq!(
                    chars.get(i + 1),
                    Some(&'\u{200b}'),
                    "{name}: a live mention in {s:?}"
                );
            }
            assert!(
                !c.is_control() || *c == '\n',
                "{name}: control character in {s:?}"
            );
        }
    }
}
