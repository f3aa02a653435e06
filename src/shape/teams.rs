//! `shape = "teams"`: a Microsoft Teams Workflows webhook message carrying one
//! Adaptive Card: a title and the facts attacker IP, decky, service, score, time.

use serde_json::{json, Value};

use super::fields;
use crate::domain::Event;

/// Characters of one fact shown at most.
pub const MAX_FACT_CHARS: usize = 200;

pub fn message(event: &Event) -> Value {
    let text = |s: &str| fields::markdown_text(s, MAX_FACT_CHARS);
    let mut facts = Vec::new();
    let mut fact = |title: &str, value: String| facts.push(json!({"title": title, "value": value}));
    if let Some(ip) = fields::attacker_ip(event) {
        fact("Attacker IP", text(ip));
    }
    if let Some(decky) = fields::decky(event) {
        fact("Decky", text(decky));
    }
    if let Some(service) = fields::service(event) {
        fact("Service", text(service));
    }
    if let Some(score) = event.payload.get("score").and_then(fields::scalar) {
        fact("Score", text(&score));
    }
    fact("Time", text(&event.ts));
    fact("Event id", text(&event.id));
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": fields::markdown_text(&format!("DECNET {}", fields::headline(event)), MAX_FACT_CHARS),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": true,
            },
            {"type": "FactSet", "facts": facts},
        ],
    });
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}
