use serde_json::json;

use super::*;

fn event(topic: &str, payload: serde_json::Value) -> Event {
    Event::new(
        "e1".into(),
        topic.into(),
        "2026-04-24T10:00:00+00:00".into(),
        "score".into(),
        payload,
    )
}

fn eval(source: &str, e: &Event) -> Result<bool, FilterError> {
    Filter::compile(source).expect("compiles").matches(e)
}

#[test]
fn the_examples_route_as_written() {
    let f = r#"payload.score >= 80 and payload.service in ["ssh", "rdp"]"#;
    let hot_ssh = event("attacker.scored", json!({"score": 91, "service": "ssh"}));
    let hot_http = event("attacker.scored", json!({"score": 91, "service": "http"}));
    let cold_rdp = event("attacker.scored", json!({"score": 12, "service": "rdp"}));
    assert_eq!(eval(f, &hot_ssh), Ok(true));
    assert_eq!(eval(f, &hot_http), Ok(false));
    assert_eq!(eval(f, &cold_rdp), Ok(false));

    let g = r#"topic != "attacker.observed" or payload.decky == "decky-01""#;
    assert_eq!(eval(g, &event("decky.x.state", json!({}))), Ok(true));
    let seen = |decky| event("attacker.observed", json!({ "decky": decky }));
    assert_eq!(eval(g, &seen("decky-01")), Ok(true));
    assert_eq!(eval(g, &seen("decky-02")), Ok(false));
}

#[test]
fn envelope_fields_tests_and_missing_paths() {
    let e = event(
        "attacker.observed",
        json!({"attacker_ip": "10.1.2.3", "tags": ["a", "b"]}),
    );
    assert_eq!(
        eval(r#"type == "score" and v == 1 and id == "e1""#, &e),
        Ok(true)
    );
    assert_eq!(
        eval(r#"payload.attacker_ip is startingwith "10.""#, &e),
        Ok(true)
    );
    assert_eq!(
        eval(r#""b" in payload.tags and payload.tags | length == 2"#, &e),
        Ok(true)
    );
    assert_eq!(
        eval("payload.nothing is defined and payload.nothing.x == 1", &e),
        Ok(false)
    );
    assert_eq!(eval("payload.nothing is not defined", &e), Ok(true));
    assert_eq!(eval(r#"payload["attacker_ip"] != "x""#, &e), Ok(true));
    assert_eq!(eval(r#"(payload.count | default(0)) < 5"#, &e), Ok(true));
}

#[test]
fn a_broken_filter_points_at_its_error() {
    let e = Filter::compile("payload.score >= ").unwrap_err();
    assert_eq!(e.position.map(|p| p.line), Some(1), "{e}");
    let e = Filter::compile("topic == \"a\"\n  and payload.x ~ \"y\" == \"z\"").unwrap_err();
    assert!(e.message.contains("concatenation"), "{e}");
    assert_eq!(e.position.map(|p| (p.line, p.column)), Some((2, 17)), "{e}");
    let e = Filter::compile("secret == 1").unwrap_err();
    assert!(e.message.contains("unknown name `secret`"), "{e}");
    assert_eq!(e.position.map(|p| p.offset), Some(0));
    let e = Filter::compile("range(10) | length > 1").unwrap_err();
    assert!(e.message.contains("calls"), "{e}");
    let e = Filter::compile("payload.x | upper == \"A\"").unwrap_err();
    assert!(e.message.contains("unknown filter `upper`"), "{e}");
    assert!(Filter::compile(r#""x" * 100000000 == "x""#).is_err());
    assert!(Filter::compile("payload.s[0:10] == \"a\"").is_err());
    assert!(Filter::compile(&"(".repeat(200)).is_err());
    assert!(Filter::compile(&format!("topic == \"{}\"", "a".repeat(3000))).is_err());
    assert!(Filter::compile("   ").is_err());
}

#[test]
fn a_missing_field_in_an_operation_is_an_error_not_a_match() {
    let e = event("attacker.scored", json!({"score": 12}));
    for source in [
        "payload.missing >= 80",
        r#"payload.missing in "abc""#,
        "payload.missing.deeper == 1",
        "payload.score | length > 1",
    ] {
        let err = eval(source, &e).expect_err(source);
        assert!(!err.message.is_empty(), "{source}");
    }
    // Short-circuits and `default` keep a filter for several event types quiet.
    assert_eq!(
        eval("payload.missing is defined and payload.missing >= 80", &e),
        Ok(false)
    );
    assert_eq!(eval("(payload.missing | default(0)) >= 80", &e), Ok(false));
}

#[test]
fn the_longest_filter_runs_within_its_fuel() {
    // As many steps as the size limit allows: the fuel is a backstop, never in the way.
    let mut source = String::from("payload.x == -2");
    while source.len() + 12 <= MAX_FILTER_BYTES {
        source.push_str(" or v == 99");
    }
    let e = event("a", json!({"x": -1}));
    assert_eq!(eval(&source, &e), Ok(false));
}

#[test]
fn the_documented_examples_compile() {
    let doc = include_str!("../../docs/filters.md");
    let mut examples = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```filter" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            examples.push(body.join("\n"));
        }
    }
    assert!(examples.len() >= 10, "{examples:?}");
    let observed = event(
        "attacker.observed",
        json!({"attacker_ip": "203.0.113.7", "decky": "decky-01", "service": "ssh"}),
    );
    for source in &examples {
        let filter = Filter::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let _ = filter.matches(&observed);
    }
    assert_eq!(eval(&examples[2], &observed), Ok(true), "{}", examples[2]);
    assert_eq!(eval(&examples[3], &observed), Ok(true), "{}", examples[3]);
    assert_eq!(eval(&examples[6], &observed), Ok(true), "{}", examples[6]);
}
