//! Where a delivery goes, how it is signed, and what protocol the receiver speaks.

use super::answer::Protocol;
use crate::{
    config::Secret,
    domain::webhook_url::{UrlError, WebhookUrl},
    shape::Shape,
};

/// Where and how to deliver: one subscription's URL and signing secrets.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: WebhookUrl,
    /// Newest first; two during a secret rotation, and every one signs.
    pub secrets: Vec<Secret>,
    /// How the request is framed and the answer judged.
    pub protocol: Protocol,
    /// The request's `Content-Type`.
    pub content_type: &'static str,
}

impl Target {
    pub fn new(url: WebhookUrl, secrets: Vec<Secret>) -> Self {
        Self {
            url,
            secrets,
            protocol: Protocol::Http,
            content_type: "application/json",
        }
    }

    /// The target of subscription `uuid` with `shape`: its stored `url` (for
    /// `sentinel`, the endpoint the stream path is added to), its secrets, and the
    /// routing key of `pagerduty`.
    pub fn for_subscription(
        url: &str,
        secrets: Vec<Secret>,
        shape: &Shape,
        uuid: &str,
        routing_key: Option<Secret>,
    ) -> Result<Self, UrlError> {
        Ok(Self {
            url: WebhookUrl::parse(&shape.request_url(url))?,
            secrets,
            protocol: Protocol::for_shape(shape, uuid, routing_key),
            content_type: shape.content_type(),
        })
    }
}
