//! Where a delivery goes, how it is signed, how it gets in, and what protocol the
//! receiver speaks.

use std::sync::Arc;

use awc::http::header::{HeaderName, HeaderValue};

use super::{access::ReceiverAccess, answer::Protocol, auth::Authorizer, tls::TlsSettings};
use crate::{
    config::Secret,
    domain::webhook_url::{UrlError, WebhookUrl},
    shape::Shape,
};

/// Where and how to deliver: one subscription's URL, signing secrets and the way in.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: WebhookUrl,
    /// Newest first; two during a secret rotation, and every one signs.
    pub secrets: Vec<Secret>,
    /// Static headers (sensitive values), the `Authorization`, and TLS settings.
    pub access: Arc<Access>,
    /// How the request is framed and the answer judged.
    pub protocol: Protocol,
    /// The request's `Content-Type`.
    pub content_type: &'static str,
}

/// A receiver's access, ready to send with.
#[derive(Debug, Default)]
pub struct Access {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub authorizer: Option<Authorizer>,
    pub tls: Option<TlsSettings>,
    /// Why the stored settings cannot be used (a value that cannot go in a header):
    /// every delivery fails with it rather than go out without them.
    pub invalid: Option<String>,
}

impl Access {
    /// Build what `access` describes once, for every delivery of the target.
    pub fn build(access: &ReceiverAccess) -> Self {
        let mut built = Self::default();
        for header in &access.headers {
            let name = HeaderName::from_bytes(header.name.as_bytes());
            let value = super::auth::sensitive(header.value.expose());
            match (name, value) {
                (Ok(name), Ok(value)) => built.headers.push((name, value)),
                _ => {
                    built.invalid = Some(format!(
                        "headers: {:?} cannot be sent as a header",
                        header.name
                    ));
                }
            }
        }
        if let Some(auth) = &access.auth {
            match Authorizer::build(auth) {
                Ok(a) => built.authorizer = Some(a),
                Err(e) => built.invalid = Some(e),
            }
        }
        built.tls = TlsSettings::build(&access.tls);
        built
    }
}

impl Target {
    /// A target with no headers, authorization or TLS settings of its own.
    pub fn new(url: WebhookUrl, secrets: Vec<Secret>) -> Self {
        Self {
            url,
            secrets,
            access: Arc::default(),
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
            protocol: Protocol::for_shape(shape, uuid, routing_key),
            content_type: shape.content_type(),
            ..Self::new(WebhookUrl::parse(&shape.request_url(url))?, secrets)
        })
    }

    /// The same target, reached with `access`.
    pub fn with_access(self, access: &ReceiverAccess) -> Self {
        Self {
            access: Arc::new(Access::build(access)),
            ..self
        }
    }
}
