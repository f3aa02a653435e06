//! Where a delivery goes and how it is signed.

use crate::{config::Secret, domain::webhook_url::WebhookUrl};

/// Where and how to deliver: one subscription's URL and signing secrets.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: WebhookUrl,
    /// Newest first; two during a secret rotation, and every one signs.
    pub secrets: Vec<Secret>,
}

impl Target {
    pub fn new(url: WebhookUrl, secrets: Vec<Secret>) -> Self {
        Self { url, secrets }
    }
}
