//! The retry schedule around guarded, pinned, signed POSTs: one attempt after
//! another until the receiver takes the event, refuses it for good, or the schedule
//! runs out; with the waits a receiver asks for, Splunk's indexing confirmation, an
//! OAuth2 token renewed when refused, and a batch's items settled one by one.

use std::time::{Duration, Instant, SystemTime};

use awc::http::{header, Uri};
use tokio::sync::watch;

use super::{
    access::OAuth2,
    answer::Verdict,
    auth::{self, Authorizer, Granted, Token, TokenError},
    failure::{failed, human, judged, warn_local_failure, AttemptError, MAX_ERROR_CHARS},
    indexing::{self, Unconfirmed},
    items::Items,
    outcome::{Attempt, DeliveryOutcome, FailureKind},
    pacing::{self, Pacing},
    pinned::{drain, pinned_post, read_answer, Connector, Pinned},
    request::{self, Prepared, Signed, APPLICATION_JSON, FORM, USER_AGENT},
    retry::{self, StatusClass},
    settings::DeliverySettings,
    target::Target,
    wait::pause,
};
use crate::{
    config::Secret,
    db::truncate_chars,
    domain::{event::Event, webhook_url::WebhookUrl},
};

/// A token endpoint's answer is read up to this size.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Sends deliveries. One per thread (awc's client is `!Send`): create one inside each
/// arbiter or actix-web worker; it keeps connections alive per destination.
pub struct DeliveryClient {
    connector: Connector,
    settings: DeliverySettings,
}

impl DeliveryClient {
    pub fn new(settings: DeliverySettings) -> Self {
        Self {
            connector: Connector::new(&settings),
            settings,
        }
    }

    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// The full retry schedule. `stop` turning true means shutdown: the attempt in
    /// flight finishes, no new attempt starts, and the outcome is the last failure.
    /// The first attempt is always made.
    pub async fn deliver(
        &self,
        target: &Target,
        event: &Event,
        stop: &watch::Receiver<bool>,
    ) -> DeliveryOutcome {
        self.run(target, event, &self.settings.retry_schedule, Some(stop))
            .await
    }

    /// Exactly one attempt, no retries (the API's test ping).
    pub async fn attempt_once(&self, target: &Target, event: &Event) -> DeliveryOutcome {
        self.run(target, event, &[], None).await
    }

    async fn run(
        &self,
        target: &Target,
        event: &Event,
        schedule: &[Duration],
        stop: Option<&watch::Receiver<bool>>,
    ) -> DeliveryOutcome {
        let started = Instant::now();
        let mut log = Vec::with_capacity(1);
        let mut prepared = match Prepared::new(target, event) {
            Ok(p) => p,
            Err(error) => return failed(error, FailureKind::NonRetryable, 1, started, log),
        };
        let mut items = Items::new(event);
        // After a partial answer, the event of the items left to send.
        let mut rest: Option<Event> = None;
        let mut delays = schedule.iter();
        let mut attempts = 0u32;
        let mut token_renewed = false;
        loop {
            // A receiver that paces its callers is sent one request at a time per URL,
            // each after the pause it asked for. A test ping (no `stop`) is the
            // operator's own request: it goes at once.
            let turn = match stop {
                Some(stop) if target.protocol.paced() => {
                    let scope = target.protocol.pacing_scope(&target.url);
                    match pacing::take_turn(&target.url, scope.as_deref(), stop).await {
                        Some(turn) => Some(turn),
                        None => {
                            let error = AttemptError::local(
                                "stopped while the receiver's rate limit ran".into(),
                            );
                            let kind = FailureKind::Shutdown;
                            return items.settled(failed(error, kind, attempts, started, log));
                        }
                    }
                }
                _ => None,
            };
            attempts += 1;
            let (at, began) = (chrono::Utc::now(), Instant::now());
            let sending = rest.as_ref().unwrap_or(event);
            let attempted = self.attempt(target, sending, &prepared).await;
            // The answer is read and its hold recorded: the next request may go.
            drop(turn);
            let answered = match attempted {
                Ok((status, Some(ack_id))) if stop.is_some() => match indexing::await_indexing(
                    &self.connector,
                    &self.settings,
                    target,
                    ack_id,
                    stop,
                )
                .await
                {
                    Ok(()) => Ok(status),
                    Err(Unconfirmed::Failed(failure)) => Err(AttemptError {
                        status: Some(status),
                        ..failure
                    }),
                    Err(Unconfirmed::Stopped) => {
                        let error =
                            AttemptError::local("stopped before Splunk confirmed indexing".into());
                        let kind = FailureKind::Shutdown;
                        return items.settled(failed(error, kind, attempts, started, log));
                    }
                },
                Ok((status, _)) => Ok(status),
                Err(failure) => Err(failure),
            };
            let mut failure = match answered {
                Ok(status) => {
                    log.push(Attempt {
                        at,
                        status: Some(status),
                        latency: began.elapsed(),
                        error: None,
                        local: false,
                        token: false,
                    });
                    return items.settled(DeliveryOutcome {
                        failure: None,
                        status: Some(status),
                        error: None,
                        attempts,
                        latency: started.elapsed(),
                        gone: false,
                        attempt_log: log,
                        item_failures: Vec::new(),
                    });
                }
                Err(failure) => failure,
            };
            if let Some(split) = failure.items.take() {
                items.refused(split.failed);
                if split.retry.is_empty() {
                    // Every item is settled: in, or refused for good.
                    items.live.clear();
                    log.push(Attempt {
                        at,
                        status: failure.status,
                        latency: began.elapsed(),
                        error: Some(truncate_chars(&failure.error, MAX_ERROR_CHARS)),
                        local: false,
                        token: failure.token,
                    });
                    return items.settled(failed(
                        failure,
                        FailureKind::NonRetryable,
                        attempts,
                        started,
                        log,
                    ));
                }
                let next = items.keep(&split.retry, event);
                prepared = match Prepared::new(target, &next) {
                    Ok(p) => p,
                    Err(error) => {
                        return items.settled(failed(
                            error,
                            FailureKind::NonRetryable,
                            attempts,
                            started,
                            log,
                        ))
                    }
                };
                rest = Some(next);
            }
            log.push(Attempt {
                at,
                status: failure.status,
                latency: began.elapsed(),
                error: Some(truncate_chars(&failure.error, MAX_ERROR_CHARS)),
                local: failure.local,
                token: failure.token,
            });
            if failure.local {
                warn_local_failure(&failure.error);
            }
            // A refused OAuth2 token is renewed once, and the request sent again at once.
            if let (Some(generation), Some(Authorizer::OAuth2(source)), false) = (
                failure.rejected_token,
                &target.access.authorizer,
                token_renewed,
            ) {
                token_renewed = true;
                source.reject(generation).await;
                tracing::debug!(url = %target.url.redacted(), "receiver refused the OAuth2 token; fetching a new one");
                continue;
            }
            tracing::debug!(
                url = %target.url.redacted(),
                event = %event.id,
                attempt = attempts,
                error = %failure.error,
                "delivery attempt failed"
            );
            let next = if failure.retryable {
                delays.next()
            } else {
                None
            };
            let Some(&scheduled) = next else {
                let kind = if failure.local {
                    FailureKind::Local
                } else if failure.retryable {
                    FailureKind::RetriesExhausted
                } else {
                    FailureKind::NonRetryable
                };
                return items.settled(failed(failure, kind, attempts, started, log));
            };
            if !pause(retry::next_delay(scheduled, failure.retry_after), stop).await {
                return items.settled(failed(
                    failure,
                    FailureKind::Shutdown,
                    attempts,
                    started,
                    log,
                ));
            }
        }
    }

    /// One attempt: guard, sign, send, read the answer; `Ok` on 2xx, with the status
    /// and, from Splunk HEC with indexer acknowledgement, the answer's `ackId`.
    async fn attempt(
        &self,
        target: &Target,
        event: &Event,
        prepared: &Prepared,
    ) -> Result<(u16, Option<u64>), AttemptError> {
        // Waiting for a slot is not part of the attempt's time.
        let slot = self.connector.slot(&target.url);
        let _permit = slot
            .acquire()
            .await
            .map_err(|_| AttemptError::local("sender is shutting down".into()))?;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let access = &target.access;
        let sent = tokio::time::timeout_at(deadline, async {
            if let Some(invalid) = &access.invalid {
                return Err(AttemptError::fatal(invalid.clone()));
            }
            let http = self.connector.http_for(access)?;
            let token = match &access.authorizer {
                Some(Authorizer::OAuth2(source)) => Some(
                    source
                        .token(|| self.fetch_token(&http, &source.config, deadline))
                        .await
                        .map_err(|e| AttemptError {
                            retryable: e.retryable,
                            token: true,
                            ..AttemptError::retryable(e.message)
                        })?,
                ),
                _ => None,
            };
            let authorization = match (&access.authorizer, &token) {
                (Some(Authorizer::Fixed(value)), _) => Some(value),
                (_, Some(token)) => Some(&token.header),
                _ => None,
            };
            let signed = Signed::new(target, prepared)?;
            let response = self
                .connector
                .send_pinned(&target.url, prepared.body.clone(), |addr| {
                    request::build(&http, target, event, prepared, &signed, authorization, addr)
                })
                .await
                .map_err(|e| match e {
                    Pinned::Refused(e) => AttemptError::fatal(format!("destination refused: {e}")),
                    Pinned::Failed(f) => f,
                })?;
            Ok((response, token.map(|t: Token| t.generation)))
        })
        .await;
        let (mut response, token) = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(failure)) => return Err(failure),
            Err(_) => {
                return Err(AttemptError::retryable(format!(
                    "timeout after {}",
                    human(self.settings.timeout)
                )))
            }
        };
        let status = response.status().as_u16();
        let retry_after = if retry::honours_retry_after(status) {
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let rejected_token = token.filter(|_| status == 401);
        let refill = target.protocol.pause_after(response.headers());
        if !target.protocol.reads_body() {
            // The status has decided; a slow or endless body only costs the connection.
            let _ = tokio::time::timeout_at(deadline, drain(&mut response)).await;
            return match retry::classify(status) {
                StatusClass::Success => Ok((status, None)),
                StatusClass::Retryable => Err(AttemptError {
                    status: Some(status),
                    retry_after,
                    ..AttemptError::retryable(format!("HTTP {status}"))
                }),
                StatusClass::Final => Err(AttemptError {
                    status: Some(status),
                    retryable: false,
                    rejected_token,
                    ..AttemptError::retryable(format!("non-retryable {status}"))
                }),
            };
        }
        // The protocol reads the answer to judge it (a code, per-item results).
        let body = tokio::time::timeout_at(deadline, read_answer(&mut response))
            .await
            .unwrap_or_default();
        let verdict = target
            .protocol
            .judge(status, retry_after, &body, prepared.items);
        if target.protocol.paced() {
            // A 429's wait holds every request to the receiver, not only this one's retry.
            let asked = match &verdict {
                Verdict::Retry { retry_after, .. } if status == 429 => *retry_after,
                _ => None,
            };
            if let Some(wait) = refill.max(asked) {
                let now = Instant::now();
                Pacing::global().hold(target.url.as_str(), now, wait);
                let scope = target.protocol.pacing_scope(&target.url);
                if let (Some(scope), true) = (
                    scope,
                    target
                        .protocol
                        .limits_every_url(status, response.headers(), &body),
                ) {
                    // Counted for every webhook called from this address.
                    Pacing::global().hold(&scope, now, wait);
                    tracing::warn!(
                        host = %target.url.host(),
                        wait_ms = wait.as_millis() as u64,
                        "Discord's global rate limit: every webhook of this Discord host waits before its next request"
                    );
                }
            }
        }
        judged(verdict, status, prepared.items).map_err(|e| AttemptError {
            rejected_token,
            ..e
        })
    }

    /// One token request to `config`'s endpoint, through the same guard and pinned
    /// connect as deliveries, within the attempt's `deadline`.
    async fn fetch_token(
        &self,
        http: &awc::Client,
        config: &OAuth2<Secret>,
        deadline: tokio::time::Instant,
    ) -> Result<Granted, TokenError> {
        let url = WebhookUrl::parse(&config.token_url)
            .map_err(|e| TokenError::new(format!("invalid token_url: {e}"), false))?;
        let uri = Uri::try_from(&url.as_url()[..url::Position::AfterQuery])
            .map_err(|e| TokenError::new(format!("invalid token_url: {e}"), false))?;
        let client_auth = auth::client_authorization(config)?;
        let body = bytes::Bytes::from(auth::token_request_body(config));
        let fetch = async {
            let mut response = self
                .connector
                .send_pinned(&url, body, |addr| {
                    let mut request = pinned_post(http, &uri, addr);
                    let headers = request.headers_mut();
                    headers.insert(header::CONTENT_TYPE, FORM);
                    headers.insert(header::ACCEPT, APPLICATION_JSON);
                    headers.insert(header::USER_AGENT, USER_AGENT);
                    headers.insert(header::AUTHORIZATION, client_auth.clone());
                    request
                })
                .await
                .map_err(|e| match e {
                    Pinned::Refused(e) => {
                        TokenError::new(format!("token endpoint refused: {e}"), false)
                    }
                    Pinned::Failed(f) => {
                        TokenError::new(format!("token endpoint: {}", f.error), f.retryable)
                    }
                })?;
            let status = response.status().as_u16();
            let body = response
                .body()
                .limit(MAX_TOKEN_RESPONSE)
                .await
                .map_err(|e| TokenError::new(format!("token endpoint answer: {e}"), true))?;
            auth::read_token_response(status, &body)
        };
        tokio::time::timeout_at(deadline, fetch)
            .await
            .unwrap_or_else(|_| {
                Err(TokenError::new(
                    format!(
                        "token endpoint timed out after {}",
                        human(self.settings.timeout)
                    ),
                    true,
                ))
            })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[actix_rt::test]
    async fn a_local_failure_is_retried_and_ends_as_local() {
        let settings = DeliverySettings {
            timeout: Duration::from_secs(1),
            retry_schedule: vec![Duration::from_millis(1)],
            allow_private: true,
            per_destination: 1,
            splunk_ack_timeout: Duration::from_secs(300),
        };
        let client = DeliveryClient::new(settings);
        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
        // A closed slot is how a sender that is shutting down answers.
        client.connector.slot(&url).close();
        let target = Target::new(url, vec![crate::config::Secret::new("s")]);
        let event = Event::outgoing(
            "e1".into(),
            "attacker.x".into(),
            bytes::Bytes::from_static(b"{}"),
        );
        let (_tx, stop) = watch::channel(false);
        let outcome = client.deliver(&target, &event, &stop).await;
        assert_eq!(outcome.failure, Some(FailureKind::Local));
        assert_eq!(outcome.attempts, 2, "retried on the schedule");
        assert!(outcome.attempt_log.iter().all(|a| a.local));
        assert_eq!(outcome.error.as_deref(), Some("sender is shutting down"));
    }
}
