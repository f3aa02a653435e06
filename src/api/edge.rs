//! What every request meets before a handler and every answer carries after it.
//!
//! Answers hold tokens and secrets: no cache keeps them and no browser sniffs them
//! into something else. A body must be declared as JSON, so a page elsewhere cannot
//! post one as a "simple" `text/plain` request, which browsers send across origins
//! without asking; and with `DECNET_API_ALLOWED_HOSTS` a `Host` that is not listed
//! (a DNS-rebinding page's own name) is refused.

use std::sync::Arc;

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderValue},
    middleware::Next,
    Error, ResponseError,
};

use crate::{config::normalize_host, error::AppError};

/// Where a health check may come from with any `Host` (probes often use an address).
const ANY_HOST: &str = "/healthz";

/// The middleware: `allowed` is `DECNET_API_ALLOWED_HOSTS` (empty: any host).
pub async fn guard(
    allowed: Arc<[String]>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let refused = misdirected(&allowed, &req).or_else(|| not_json(&req));
    let mut res = match refused {
        Some(e) => req.into_response(e.error_response()),
        // Handlers and extractors turn their errors into answers, which pass here.
        None => next.call(req).await?.map_into_boxed_body(),
    };
    let headers = res.headers_mut();
    // The page's assets choose their own (revalidated, never secret).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// 421 when hosts are listed and this request names another.
fn misdirected(allowed: &[String], req: &ServiceRequest) -> Option<AppError> {
    if allowed.is_empty() || req.path() == ANY_HOST {
        return None;
    }
    let named = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let host = normalize_host(without_port(named));
    if host.is_some_and(|h| allowed.contains(&h)) {
        return None;
    }
    Some(AppError::MisdirectedRequest(format!(
        "Host {named:?} is not one this API answers to (DECNET_API_ALLOWED_HOSTS)"
    )))
}

/// `example.com:8000` → `example.com`, `[::1]:8000` → `[::1]`.
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split(':').next().unwrap_or(host)
}

/// 415 when an API request carries a body not declared as `application/json`.
fn not_json(req: &ServiceRequest) -> Option<AppError> {
    if !req.path().starts_with("/api/") || !has_body(req) {
        return None;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if declared.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return None;
    }
    Some(AppError::UnsupportedMediaType(
        "Content-Type must be application/json".into(),
    ))
}

/// Whether the request sends a body: a length above zero, or chunks.
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    let length = headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    headers.contains_key(header::TRANSFER_ENCODING) || matches!(length, Some(n) if n != Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_off() {
        assert_eq!(without_port("decnet.example:8000"), "decnet.example");
        assert_eq!(without_port("decnet.example"), "decnet.example");
        assert_eq!(without_port("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(without_port("[::1]:8000"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port("[::1"), "[::1");
    }
}
