//! The `Authorization` a request carries: a fixed value (bearer, basic), or an OAuth2
//! access token from the client credentials grant.
//!
//! An OAuth2 token is fetched at first need and cached until shortly before it
//! expires. Every target with the same OAuth2 settings in this process shares one
//! [`TokenSource`], so concurrent deliveries wait for one fetch instead of each making
//! their own, and share its result, success or failure. A receiver that answers 401
//! has the token it refused forgotten ([`TokenSource::reject`]); the next request
//! fetches a new one. How the fetch is sent is the caller's (the delivery client's
//! guarded, pinned connect); this module only decides when to fetch and what the
//! token endpoint's answer means.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, LazyLock, Mutex, PoisonError, Weak,
    },
    time::{Duration, Instant},
};

use awc::http::header::HeaderValue;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use sha2::{Digest, Sha256};

use super::access::{Auth, OAuth2};
use crate::config::Secret;

/// A token endpoint answer without `expires_in` is trusted this long.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// No token is trusted longer than this, whatever the endpoint says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A token is renewed this long before it expires at most (a fifth of a short
/// lifetime), so a request never leaves with a token about to expire.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
/// The characters of a token endpoint's error code shown in a delivery error.
const MAX_ERROR_CODE_CHARS: usize = 64;

/// What a request's `Authorization` comes from.
#[derive(Clone)]
pub enum Authorizer {
    /// The same value on every request (bearer, basic).
    Fixed(HeaderValue),
    /// A token from an OAuth2 token endpoint.
    OAuth2(Arc<TokenSource>),
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(_) => f.write_str("Authorizer::Fixed([redacted])"),
            Self::OAuth2(s) => write!(f, "Authorizer::OAuth2({})", s.config.token_url),
        }
    }
}

impl Authorizer {
    /// The authorizer of a scheme; an error when a value cannot go in a header.
    pub fn build(auth: &Auth<Secret>) -> Result<Self, String> {
        match auth {
            Auth::Bearer { token } => {
                sensitive(&format!("Bearer {}", token.expose())).map(Self::Fixed)
            }
            Auth::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose());
                sensitive(&format!("Basic {}", BASE64.encode(pair))).map(Self::Fixed)
            }
            Auth::OAuth2(config) => Ok(Self::OAuth2(TokenSource::shared(config))),
        }
    }
}

/// A header value that never prints (`Debug` shows `Sensitive`) and is never
/// compressed into HTTP/2's header table.
pub fn sensitive(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "auth: the credentials are not a valid header value".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A token ready to send.
#[derive(Clone, Debug)]
pub struct Token {
    /// `Bearer <access token>`, sensitive.
    pub header: HeaderValue,
    /// Which fetch of its source it came from; a 401 rejects this one only.
    pub generation: u64,
    renew_at: Instant,
}

/// Why no token could be had: the delivery fails with `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    pub message: String,
    /// Worth retrying on the schedule (a timeout, a 5xx, a 429, the network).
    pub retryable: bool,
}

impl TokenError {
    pub fn new(message: impl Into<String>, retryable: bool) -> Self {
        Self {
            message: format!("oauth2: {}", message.into()),
            retryable,
        }
    }
}

/// A successful token endpoint answer.
pub struct Granted {
    pub access_token: Secret,
    pub lifetime: Duration,
}

/// One OAuth2 client's token, fetched one at a time and cached.
pub struct TokenSource {
    pub config: OAuth2<Secret>,
    state: tokio::sync::Mutex<TokenState>,
    /// Fetches started, read before waiting for the lock: a waiter shares the failure
    /// of a fetch that started after it began waiting rather than fetch again.
    fetches: AtomicU64,
}

#[derive(Default)]
struct TokenState {
    token: Option<Token>,
    generation: u64,
    failure: Option<(u64, TokenError)>,
}

/// The token sources alive in this process, by a digest of their settings.
static SOURCES: LazyLock<Mutex<HashMap<[u8; 32], Weak<TokenSource>>>> =
    LazyLock::new(Mutex::default);

impl TokenSource {
    fn new(config: OAuth2<Secret>) -> Self {
        Self {
            config,
            state: tokio::sync::Mutex::default(),
            fetches: AtomicU64::new(0),
        }
    }

    /// The source of these settings, shared with every target that has the same ones
    /// (across subscription reloads, and between the worker and the API's test ping
    /// and replay in one process).
    pub fn shared(config: &OAuth2<Secret>) -> Arc<Self> {
        let key = digest(config);
        let mut sources = SOURCES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(source) = sources.get(&key).and_then(Weak::upgrade) {
            return source;
        }
        sources.retain(|_, s| s.strong_count() > 0);
        let source = Arc::new(Self::new(config.clone()));
        sources.insert(key, Arc::downgrade(&source));
        source
    }

    /// The cached token while it is fresh, else the result of one fetch by `fetch`
    /// (which requests a token for [`Self::config`]):
    /// callers arriving during a fetch wait for it and share what it returns.
    pub async fn token<F, Fut>(&self, fetch: F) -> Result<Token, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Granted, TokenError>>,
    {
        let seen = self.fetches.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(token) = state.token.as_ref().filter(|t| now < t.renew_at) {
            return Ok(token.clone());
        }
        if let Some((fetch, error)) = &state.failure {
            if *fetch > seen {
                return Err(error.clone());
            }
        }
        let number = self.fetches.fetch_add(1, Ordering::AcqRel) + 1;
        match fetch().await {
            Ok(granted) => {
                state.generation += 1;
                let lifetime = granted.lifetime.min(MAX_TOKEN_LIFETIME);
                let early = RENEW_BEFORE_EXPIRY.min(lifetime / 5);
                let token = Token {
                    header: sensitive(&format!("Bearer {}", granted.access_token.expose()))
                        .map_err(|_| {
                            TokenError::new("the access token is not a valid header value", false)
                        })?,
                    generation: state.generation,
                    renew_at: Instant::now() + (lifetime - early),
                };
                state.token = Some(token.clone());
                state.failure = None;
                Ok(token)
            }
            Err(error) => {
                state.token = None;
                state.failure = Some((number, error.clone()));
                Err(error)
            }
        }
    }

    /// The receiver refused the token of `generation`: forget it, unless a newer one
    /// already replaced it (so concurrent 401s on one token cost one new fetch).
    pub async fn reject(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            state.token = None;
        }
    }
}

fn digest(config: &OAuth2<Secret>) -> [u8; 32] {
    let mut d = Sha256::new();
    for part in [
        Some(config.token_url.as_str()),
        Some(config.client_id.as_str()),
        Some(config.client_secret.expose()),
        config.scope.as_deref(),
        config.audience.as_deref(),
    ] {
        match part {
            Some(p) => {
                d.update([1]);
                d.update((p.len() as u64).to_be_bytes());
                d.update(p.as_bytes());
            }
            None => d.update([0]),
        }
    }
    d.finalize().into()
}

/// The token request's form body (RFC 6749 §4.4.2); the client authenticates with
/// HTTP Basic ([`client_authorization`]) and also names itself in the body, which
/// every common provider accepts.
pub fn token_request_body(config: &OAuth2<Secret>) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    form.append_pair("client_id", &config.client_id);
    if let Some(scope) = &config.scope {
        form.append_pair("scope", scope);
    }
    if let Some(audience) = &config.audience {
        form.append_pair("audience", audience);
    }
    form.finish()
}

/// `Basic base64(urlencode(client_id):urlencode(client_secret))` (RFC 6749 §2.3.1).
pub fn client_authorization(config: &OAuth2<Secret>) -> Result<HeaderValue, TokenError> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!(
        "{}:{}",
        encode(&config.client_id),
        encode(config.client_secret.expose())
    );
    sensitive(&format!("Basic {}", BASE64.encode(pair)))
        .map_err(|_| TokenError::new("the client credentials are not a valid header value", false))
}

/// What a token endpoint's answer means (RFC 6749 §5.1, §5.2).
pub fn read_token_response(status: u16, body: &[u8]) -> Result<Granted, TokenError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: Option<String>,
        token_type: Option<String>,
        expires_in: Option<serde_json::Value>,
        error: Option<String>,
    }
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        let code = answer
            .and_then(|a| a.error)
            .map(|e| printable(&e))
            .filter(|e| !e.is_empty());
        let retryable = status == 429 || status >= 500;
        return Err(TokenError::new(
            match code {
                Some(code) => format!("token endpoint answered {status}: {code}"),
                None => format!("token endpoint answered {status}"),
            },
            retryable,
        ));
    }
    let Some(answer) = answer else {
        return Err(TokenError::new(
            format!("token endpoint answered {status} without a JSON token"),
            false,
        ));
    };
    let Some(token) = answer.access_token.filter(|t| !t.is_empty()) else {
        return Err(TokenError::new(
            format!("token endpoint answered {status} without an access_token"),
            false,
        ));
    };
    if let Some(kind) = answer.token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::new(
                format!(
                    "token type {:?} is not supported (bearer only)",
                    printable(&kind)
                ),
                false,
            ));
        }
    }
    // A number, or a numeric string as some providers send it.
    let lifetime = match answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s >= 0.0)
    .map_or(DEFAULT_TOKEN_LIFETIME, |s| {
        Duration::try_from_secs_f64(s).unwrap_or(MAX_TOKEN_LIFETIME)
    });
    Ok(Granted {
        access_token: Secret::new(token),
        lifetime,
    })
}

/// An endpoint's error code as shown: printable ASCII only, bounded.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_ERROR_CODE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> OAuth2<Secret> {
        OAuth2 {
            token_url: "https://idp.example/token".into(),
            client_id: "decnet client".into(),
            client_secret: Secret::new(secret),
            scope: Some("a b".into()),
            audience: None,
        }
    }

    #[test]
    fn token_endpoint_errors_read_well() {
        let err = read_token_response(400, br#"{"error":"invalid_client"}"#)
            .err()
            .unwrap();
        assert_eq!(
            err.message,
            "oauth2: token endpoint answered 400: invalid_client"
        );
        assert!(!err.retryable);
        let err = read_token_response(503, b"<html>").err().unwrap();
        assert_eq!(err.message, "oauth2: token endpoint answered 503");
        assert!(err.retryable);
        let err = read_token_response(400, "{\"error\":\"bad\\r\\nX: y\"}".as_bytes())
            .err()
            .unwrap();
        assert_eq!(err.message, "oauth2: token endpoint answered 400: badX: y");
        let err = read_token_response(200, br#"{"token_type":"bearer"}"#)
            .err()
            .unwrap();
        assert!(err.message.contains("without an access_token"), "{err:?}");
        let err = read_token_response(200, br#"{"access_token":"t","token_type":"mac"}"#)
            .err()
            .unwrap();
        assert!(err.message.contains("not supported"), "{err:?}");
    }

    #[test]
    fn lifetimes_are_read_and_bounded() {
        let life = |body: &str| {
            read_token_response(200, body.as_bytes())
                .ok()
                .unwrap()
                .lifetime
        };
        assert_eq!(
            life(r#"{"access_token":"t","expires_in":60}"#),
            Duration::from_secs(60)
        );
        assert_eq!(
            life(r#"{"access_token":"t","expires_in":"90"}"#),
            Duration::from_secs(90)
        );
        assert_eq!(life(r#"{"access_token":"t"}"#), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(
            life(r#"{"access_token":"t","expires_in":-5}"#),
            DEFAULT_TOKEN_LIFETIME
        );
        assert_eq!(
            life(r#"{"access_token":"t","expires_in":1e300}"#),
            MAX_TOKEN_LIFETIME
        );
    }

    #[test]
    fn the_token_request_is_a_form_with_basic_client_authentication() {
        let c = config("s3cr:et");
        assert_eq!(
            token_request_body(&c),
            "grant_type=client_credentials&client_id=decnet+client&scope=a+b"
        );
        let header = client_authorization(&c).unwrap();
        assert!(header.is_sensitive());
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        assert_eq!(BASE64.decode(encoded).unwrap(), b"decnet+client:s3cr%3Aet");
    }

    #[test]
    fn equal_settings_share_a_source_and_others_do_not() {
        let a = TokenSource::shared(&config("one"));
        let b = TokenSource::shared(&config("one"));
        let c = TokenSource::shared(&config("two"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_a_rejection_costs_one_more() {
        let source = Arc::new(TokenSource::new(config("x")));
        let fetched = Arc::new(AtomicU64::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        for _ in 0..50 {
            let (source, fetched, gate) = (source.clone(), fetched.clone(), gate.clone());
            callers.push(tokio::spawn(async move {
                source
                    .token(|| async move {
                        let n = fetched.fetch_add(1, Ordering::SeqCst) + 1;
                        let mut gate = gate;
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(Granted {
                            access_token: Secret::new(format!("t{n}")),
                            lifetime: Duration::from_secs(3600),
                        })
                    })
                    .await
                    .map(|t| t.generation)
            }));
        }
        release.send(true).unwrap();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), Ok(1));
        }
        assert_eq!(fetched.load(Ordering::SeqCst), 1);
        // Two rejections of the same token: one new fetch.
        source.reject(1).await;
        source.reject(1).await;
        let again = |n: u64| {
            let fetched = fetched.clone();
            move || async move {
                fetched.fetch_add(1, Ordering::SeqCst);
                Ok(Granted {
                    access_token: Secret::new(format!("t{n}")),
                    lifetime: Duration::from_secs(3600),
                })
            }
        };
        assert_eq!(source.token(again(2)).await.unwrap().generation, 2);
        source.reject(1).await;
        assert_eq!(source.token(again(3)).await.unwrap().generation, 2);
        assert_eq!(fetched.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn waiters_share_a_failure_and_later_callers_fetch_again() {
        let source = TokenSource::new(config("x"));
        let fail = || async {
            Err::<Granted, _>(TokenError::new(
                "token endpoint answered 400: invalid_client",
                false,
            ))
        };
        let err = source.token(fail).await.unwrap_err();
        assert_eq!(
            err.message,
            "oauth2: token endpoint answered 400: invalid_client"
        );
        let ok = || async {
            Ok(Granted {
                access_token: Secret::new("t"),
                lifetime: Duration::ZERO,
            })
        };
        // Began after the failure: fetches anew. An expired token is fetched again.
        let first = source.token(ok).await.unwrap();
        let second = source.token(ok).await.unwrap();
        assert_eq!((first.generation, second.generation), (1, 2));
    }
}
