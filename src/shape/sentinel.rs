//! `shape = "sentinel"`: a record for the Azure Monitor Logs Ingestion API; the
//! request body is a JSON array of records (one, or a batch).

use serde_json::{json, Map, Value};

use super::{destination::Destination, fields};
use crate::domain::Event;

/// The largest request body the Logs Ingestion API takes is 1 MB; batches are cut
/// below it.
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

/// The columns of the custom table (docs/destinations.md has its definition).
pub fn record(event: &Event) -> Value {
    let mut r = Map::new();
    r.insert("TimeGenerated".into(), json!(fields::timestamp(event)));
    r.insert("EventId".into(), json!(event.id));
    r.insert("Topic".into(), json!(event.topic));
    r.insert("EventType".into(), json!(event.kind));
    if let Some(ip) = fields::attacker_ip(event) {
        r.insert("AttackerIp".into(), json!(ip));
    }
    if let Some(decky) = fields::decky(event) {
        r.insert("Decky".into(), json!(decky));
    }
    if let Some(service) = fields::service(event) {
        r.insert("Service".into(), json!(service));
    }
    if let Some(score) = fields::score(event) {
        r.insert("Score".into(), json!(score));
    }
    r.insert("Payload".into(), event.payload.clone());
    Value::Object(r)
}

/// `{endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`.
pub fn url(endpoint: &str, settings: &Destination) -> String {
    let base = endpoint.split(['?', '#']).next().unwrap_or(endpoint);
    format!(
        "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
        base.trim_end_matches('/'),
        settings.dcr_immutable_id.as_deref().unwrap_or_default(),
        settings.stream.as_deref().unwrap_or_default(),
    )
}

pub const API_VERSION: &str = "2023-01-01";
