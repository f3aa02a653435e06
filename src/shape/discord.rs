//! `shape = "discord"`: a Discord webhook message, one embed with the payload's
//! fields, within Discord's limits, and no mention can ping anyone.

use serde_json::{json, Map, Value};

use super::{fields, slack::KEY_FIELDS};
use crate::domain::Event;

/// Discord's limits (embed fields, and characters of each part).
pub const MAX_FIELDS: usize = 25;
pub const MAX_CONTENT_CHARS: usize = 2000;
pub const MAX_TITLE_CHARS: usize = 256;
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
pub const MAX_FIELD_NAME_CHARS: usize = 256;
pub const MAX_FIELD_VALUE_CHARS: usize = 1024;
/// An escape can double a character's length, so text is cut at half a limit
/// before escaping; the whole embed stays well under Discord's 6,000.
const fn half(n: usize) -> usize {
    n / 2
}
/// The field values are cut shorter still, so 25 of them fit the embed total.
const FIELD_VALUE_CHARS: usize = 100;
const FIELD_NAME_CHARS: usize = 40;
/// Characters of one description line's value: three lines, escaped, stay far
/// below [`MAX_DESCRIPTION_CHARS`].
const LINE_CHARS: usize = 500;

pub fn message(event: &Event) -> Value {
    let headline = fields::headline(event);
    let mut content = format!("DECNET {headline}");
    if let Some(ip) = fields::attacker_ip(event) {
        content.push_str(&format!(" from {ip}"));
    }
    // Each line cut and escaped alone; the line breaks are the shape's own.
    let line =
        |label: &str, value: &str| format!("{label}: {}", fields::markdown_text(value, LINE_CHARS));
    let mut description = vec![line("Event id", &event.id), line("Time", &event.ts)];
    if let Some(decky) = fields::decky(event) {
        description.push(line("Decky", decky));
    }
    let mut embed = Map::new();
    embed.insert(
        "title".into(),
        json!(fields::markdown_text(
            &format!("DECNET {headline}"),
            half(MAX_TITLE_CHARS)
        )),
    );
    embed.insert("description".into(), json!(description.join("\n")));
    embed.insert("fields".into(), json!(embed_fields(&event.payload)));
    if fields::time(event).is_some() {
        embed.insert("timestamp".into(), json!(event.ts));
    }
    json!({
        "content": fields::markdown_text(&content, half(MAX_CONTENT_CHARS)),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    })
}

/// The payload's scalars, the well-known keys first, at most [`MAX_FIELDS`].
fn embed_fields(payload: &Value) -> Vec<Value> {
    let Value::Object(payload) = payload else {
        return Vec::new();
    };
    super::fields::in_showing_order(payload, &KEY_FIELDS)
        .filter_map(|(k, v)| {
            let value = fields::scalar(v)?;
            let name = fields::markdown_text(k, FIELD_NAME_CHARS);
            let value = fields::markdown_text(&value, FIELD_VALUE_CHARS);
            // Discord refuses an empty name or value.
            Some(json!({
                "name": if name.is_empty() { "\u{200b}".to_owned() } else { name },
                "value": if value.is_empty() { "\u{200b}".to_owned() } else { value },
                "inline": true,
            }))
        })
        .take(MAX_FIELDS)
        .collect()
}
