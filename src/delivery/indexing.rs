//! Splunk HEC's indexer acknowledgement: a 200 with an `ackId` only says HEC received
//! the events. The delivery stays in flight while HEC's acknowledgement endpoint is
//! asked about it, and counts once HEC says they are indexed.

use std::time::{Duration, Instant};

use awc::http::{header, Uri};
use bytes::Bytes;
use tokio::sync::watch;

use super::{
    answer::{self, Protocol},
    auth::Authorizer,
    failure::{human, AttemptError},
    pinned::{pinned_post, read_answer, Connector, Pinned},
    request::{APPLICATION_JSON, USER_AGENT, X_SPLUNK_REQUEST_CHANNEL},
    settings::DeliverySettings,
    target::Target,
    wait::pause,
};
use crate::domain::webhook_url::WebhookUrl;

/// The acknowledgement is asked for after this, then twice as long after each
/// answer that the events are not yet in, up to `ACK_POLL_MAX`.
const ACK_POLL_FIRST: Duration = Duration::from_millis(250);
const ACK_POLL_MAX: Duration = Duration::from_secs(10);

/// Why Splunk did not confirm indexing a request's events.
pub(super) enum Unconfirmed {
    Failed(AttemptError),
    /// The worker is stopping.
    Stopped,
}

/// HEC's acknowledgement endpoint beside the one events go to (the same
/// `…/services/collector` prefix, which a proxy may have put under a path of its own).
fn splunk_ack_uri(url: &WebhookUrl) -> Result<Uri, AttemptError> {
    let mut ack = url.as_url().clone();
    let base = match ack.path().find("/services/collector") {
        Some(at) => ack.path()[..at].to_owned(),
        None => String::new(),
    };
    ack.set_path(&format!("{base}/services/collector/ack"));
    ack.set_query(None);
    ack.set_fragment(None);
    Uri::try_from(ack.as_str())
        .map_err(|e| AttemptError::fatal(format!("invalid acknowledgement url: {e}")))
}

/// Splunk HEC with indexer acknowledgement: its 200 only says the events were
/// received. Ask `/services/collector/ack` about `ack_id` until HEC says they are
/// indexed; not said within the setting's time, the request failed (and is sent
/// again as any failure is).
pub(super) async fn await_indexing(
    connector: &Connector,
    settings: &DeliverySettings,
    target: &Target,
    ack_id: u64,
    stop: Option<&watch::Receiver<bool>>,
) -> Result<(), Unconfirmed> {
    let uri = splunk_ack_uri(&target.url).map_err(Unconfirmed::Failed)?;
    let timeout = settings.splunk_ack_timeout;
    let deadline = Instant::now() + timeout;
    let mut every = ACK_POLL_FIRST;
    loop {
        let wait = every.min(deadline.saturating_duration_since(Instant::now()));
        if !pause(wait, stop).await {
            return Err(Unconfirmed::Stopped);
        }
        let asked = query_ack(connector, settings.timeout, target, &uri, ack_id).await;
        match &asked {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(url = %target.url.redacted(), ack_id, error = %e, "Splunk acknowledgement query failed")
            }
        }
        if Instant::now() >= deadline {
            let mut error = format!(
                "Splunk did not confirm indexing (ackId {ack_id}) within {}",
                human(timeout)
            );
            if let Err(e) = asked {
                error.push_str(&format!("; the last query: {e}"));
            }
            return Err(Unconfirmed::Failed(AttemptError::retryable(error)));
        }
        every = (every * 2).min(ACK_POLL_MAX);
    }
}

/// One acknowledgement query, sent as deliveries are (guard, pinned address, the
/// receiver's headers, token and channel), within the attempt timeout.
async fn query_ack(
    connector: &Connector,
    timeout: Duration,
    target: &Target,
    uri: &Uri,
    ack_id: u64,
) -> Result<bool, String> {
    let access = &target.access;
    let http = connector.http_for(access).map_err(|e| e.error)?;
    let authorization = match &access.authorizer {
        Some(Authorizer::Fixed(value)) => Some(value),
        _ => None,
    };
    let channel = match &target.protocol {
        Protocol::SplunkHec { channel } => channel.as_ref(),
        _ => None,
    };
    let body = Bytes::from(answer::splunk_ack_query(ack_id));
    let deadline = tokio::time::Instant::now() + timeout;
    let asked = tokio::time::timeout_at(deadline, async {
        let mut response = connector
            .send_pinned(&target.url, body, |addr| {
                let mut request = pinned_post(&http, uri, addr);
                let headers = request.headers_mut();
                headers.insert(header::CONTENT_TYPE, APPLICATION_JSON);
                headers.insert(header::USER_AGENT, USER_AGENT);
                for (name, value) in &access.headers {
                    headers.insert(name.clone(), value.clone());
                }
                if let Some(value) = authorization {
                    headers.insert(header::AUTHORIZATION, value.clone());
                }
                if let Some(channel) = channel {
                    headers.insert(X_SPLUNK_REQUEST_CHANNEL, channel.clone());
                }
                request
            })
            .await
            .map_err(|e| match e {
                Pinned::Refused(e) => format!("destination refused: {e}"),
                Pinned::Failed(f) => f.error,
            })?;
        let status = response.status().as_u16();
        Ok::<_, String>((status, read_answer(&mut response).await))
    })
    .await
    .map_err(|_| format!("timeout after {}", human(timeout)))?;
    let (status, body) = asked?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    answer::splunk_acked(&body, ack_id).ok_or_else(|| "no answer for its ackId".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splunk_acknowledgements_are_asked_beside_the_event_endpoint() {
        let ack = |url: &str| {
            splunk_ack_uri(&WebhookUrl::parse(url).unwrap())
                .ok()
                .map(|u| u.to_string())
        };
        assert_eq!(
            ack("https://splunk.example.org:8088/services/collector/event").as_deref(),
            Some("https://splunk.example.org:8088/services/collector/ack")
        );
        assert_eq!(
            ack("https://proxy.example.org/splunk/services/collector/event?channel=x#f").as_deref(),
            Some("https://proxy.example.org/splunk/services/collector/ack")
        );
        assert_eq!(
            ack("https://splunk.example.org/services/collector").as_deref(),
            Some("https://splunk.example.org/services/collector/ack")
        );
        assert_eq!(
            ack("https://splunk.example.org/hec").as_deref(),
            Some("https://splunk.example.org/services/collector/ack")
        );
    }
}
