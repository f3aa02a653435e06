//! How a subscription reaches its receiver, as the API takes and shows it: static
//! `headers`, `auth` and `tls`. Their secret parts are write-only: answers show header
//! names, the auth type and its non-secret fields, and whether a key is stored.

use std::{fmt, time::SystemTime};

use entity::webhook_subscription::Model;
use serde::{
    de::{MapAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};
use utoipa::ToSchema;

use crate::{
    config::Secret,
    delivery::{
        access::{self, Auth, Header, OAuth2, ReceiverAccess, TlsMaterial},
        tls,
    },
    domain::WebhookUrl,
    error::AppError,
};

pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_NAME_CHARS: usize = 128;
pub const MAX_HEADER_VALUE_CHARS: usize = 4096;
pub const MAX_CREDENTIAL_CHARS: usize = 4096;
pub const MAX_NAME_CHARS: usize = 1024;
pub const MAX_CA_PEM_CHARS: usize = 32 * 1024;
pub const MAX_CERT_PEM_CHARS: usize = 16 * 1024;

/// Headers the service sets itself, or that would change how the request is framed
/// or routed: never taken from a subscription.
const RESERVED: [&str; 12] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];
/// Prefixes of the signature headers.
const RESERVED_PREFIXES: [&str; 2] = ["x-decnet-", "webhook-"];

fn invalid(field: &str, problem: impl fmt::Display) -> AppError {
    AppError::Unprocessable(format!("{field}: {problem}"))
}

/// Static headers as given: a JSON object, name → value (`null`: keep the stored
/// value), in the order given; a name given twice is kept twice, to be refused.
#[derive(Debug, Default)]
pub struct HeaderList(pub Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = HeaderList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of header names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderList, A::Error> {
                let mut headers = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Option<String>>()? {
                    // Bounded here so a huge object is refused before it is kept.
                    if headers.len() == MAX_HEADERS {
                        return Err(serde::de::Error::custom(format!(
                            "at most {MAX_HEADERS} headers are allowed"
                        )));
                    }
                    headers.push((name, value));
                }
                Ok(HeaderList(headers))
            }
        }
        d.deserialize_map(List)
    }
}

/// An authorization as given. On a PATCH a secret part left out keeps the stored
/// one, if the stored authorization has the same type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthInput {
    /// `Authorization: Bearer <token>` (TheHive API keys, most SaaS APIs).
    Bearer {
        #[serde(default)]
        #[schema(write_only, max_length = 4096)]
        token: Option<String>,
    },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        #[schema(max_length = 1024)]
        username: String,
        #[serde(default)]
        #[schema(write_only, max_length = 4096)]
        password: Option<String>,
    },
    /// A bearer token from an OAuth2 token endpoint (client credentials grant),
    /// fetched when needed and cached until shortly before it expires.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        /// The token endpoint; it passes the same URL guard as the receiver.
        #[schema(max_length = 2048, example = "https://login.example.com/oauth2/token")]
        token_url: String,
        #[schema(max_length = 1024)]
        client_id: String,
        #[serde(default)]
        #[schema(write_only, max_length = 4096)]
        client_secret: Option<String>,
        #[serde(default)]
        #[schema(max_length = 1024)]
        scope: Option<String>,
        #[serde(default)]
        #[schema(max_length = 2048)]
        audience: Option<String>,
    },
}

/// TLS settings as given.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    /// CA certificates (PEM) trusted for this receiver instead of the public roots.
    #[serde(default)]
    #[schema(max_length = 32768)]
    pub ca_pem: Option<String>,
    /// A client certificate chain (PEM), end-entity first, for mutual TLS.
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key (PEM, unencrypted PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    #[schema(write_only, max_length = 16384)]
    pub client_key_pem: Option<String>,
}

/// An authorization as answers show it: its type and non-secret fields.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthView {
    Bearer {},
    Basic {
        username: String,
    },
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        scope: Option<String>,
        audience: Option<String>,
    },
}

impl AuthView {
    pub fn of(row: &Model) -> Option<Self> {
        let auth = access::parse_auth(row.auth.as_deref()).ok().flatten()?;
        Some(match auth {
            Auth::Bearer { .. } => Self::Bearer {},
            Auth::Basic { username, .. } => Self::Basic { username },
            Auth::OAuth2(o) => Self::OAuth2ClientCredentials {
                token_url: o.token_url,
                client_id: o.client_id,
                scope: o.scope,
                audience: o.audience,
            },
        })
    }
}

/// TLS settings as answers show them: the public parts, and whether a key is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct TlsView {
    pub ca_pem: Option<String>,
    pub client_cert_pem: Option<String>,
    /// A client key is stored (it is never shown).
    pub client_key_stored: bool,
}

impl TlsView {
    pub fn of(row: &Model) -> Option<Self> {
        let view = Self {
            ca_pem: row.tls_ca_pem.clone(),
            client_cert_pem: row.tls_client_cert_pem.clone(),
            client_key_stored: row.tls_client_key_pem.is_some(),
        };
        (view.ca_pem.is_some() || view.client_cert_pem.is_some() || view.client_key_stored)
            .then_some(view)
    }
}

/// The names of a row's static headers, in order.
pub fn header_names(row: &Model) -> Vec<String> {
    access::parse_headers(row.headers.as_deref())
        .map(|h| h.into_iter().map(|h| h.name).collect())
        .unwrap_or_default()
}

/// What a create or PATCH says about access; each `None` when not given, `Some(None)`
/// when given as `null` (removed).
#[derive(Default)]
pub struct AccessInput {
    pub headers: Option<Option<HeaderList>>,
    pub auth: Option<Option<AuthInput>>,
    pub tls: Option<Option<TlsInput>>,
}

impl AccessInput {
    pub fn is_empty(&self) -> bool {
        self.headers.is_none() && self.auth.is_none() && self.tls.is_none()
    }

    /// Whether it names a token endpoint (whose guard costs a DNS lookup).
    pub fn has_token_url(&self) -> bool {
        matches!(
            self.auth,
            Some(Some(AuthInput::OAuth2ClientCredentials { .. }))
        )
    }

    /// The access after the request, checked, from `current` (the stored one opened;
    /// the default on create). Secret parts not given are taken from `current`.
    pub async fn resolve(
        self,
        current: &ReceiverAccess,
        allow_private: bool,
    ) -> Result<ReceiverAccess, AppError> {
        let auth = match self.auth {
            None => current.auth.clone(),
            Some(None) => None,
            Some(Some(given)) => Some(auth(given, current.auth.as_ref(), allow_private).await?),
        };
        let headers = match self.headers {
            None => current.headers.clone(),
            Some(None) => Vec::new(),
            Some(Some(given)) => headers(given, &current.headers)?,
        };
        if auth.is_some() {
            if let Some(h) = headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("authorization"))
            {
                return Err(invalid(
                    &format!("headers.{}", h.name),
                    "conflicts with auth, which sets Authorization; give one or the other",
                ));
            }
        }
        let tls = match self.tls {
            None => current.tls.clone(),
            Some(None) => TlsMaterial::default(),
            Some(Some(given)) => tls_material(given, &current.tls)?,
        };
        Ok(ReceiverAccess { headers, auth, tls })
    }
}

fn headers(given: HeaderList, current: &[Header<Secret>]) -> Result<Vec<Header<Secret>>, AppError> {
    if given.0.len() > MAX_HEADERS {
        return Err(invalid(
            "headers",
            format!("at most {MAX_HEADERS} headers are allowed"),
        ));
    }
    let mut out: Vec<Header<Secret>> = Vec::with_capacity(given.0.len());
    for (name, value) in given.0 {
        let field = format!("headers.{}", shown(&name));
        header_name(&field, &name)?;
        if out.iter().any(|h| h.name.eq_ignore_ascii_case(&name)) {
            return Err(invalid(&field, "given twice"));
        }
        let value = match value {
            Some(v) => {
                header_value(&field, &v)?;
                Secret::new(v)
            }
            None => current
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(&name))
                .map(|h| h.value.clone())
                .ok_or_else(|| {
                    invalid(
                        &field,
                        "a value is required (null keeps a stored value, and there is none)",
                    )
                })?,
        };
        out.push(Header { name, value });
    }
    Ok(out)
}

/// A name as an error message shows it: bounded, control characters escaped.
fn shown(name: &str) -> String {
    let short: String = name.chars().take(MAX_HEADER_NAME_CHARS).collect();
    if short.chars().all(|c| c.is_ascii_graphic()) {
        short
    } else {
        format!("{short:?}")
    }
}

fn header_name(field: &str, name: &str) -> Result<(), AppError> {
    // RFC 9110 token characters.
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.chars().count() > MAX_HEADER_NAME_CHARS || !name.chars().all(tchar) {
        return Err(invalid(
            field,
            format!("not a valid header name (1–{MAX_HEADER_NAME_CHARS} token characters)"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Err(invalid(
            field,
            format!("{name} is set by the service and cannot be given"),
        ));
    }
    Ok(())
}

fn header_value(field: &str, value: &str) -> Result<(), AppError> {
    if value.chars().count() > MAX_HEADER_VALUE_CHARS {
        return Err(invalid(
            field,
            format!("the value must be at most {MAX_HEADER_VALUE_CHARS} characters"),
        ));
    }
    if !value
        .chars()
        .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
    {
        return Err(invalid(
            field,
            "the value must be printable ASCII (no line breaks or control characters)",
        ));
    }
    not_sealed_looking(field, value)
}

/// Without a key a value is stored as given, and one starting so would be read as
/// sealed.
fn not_sealed_looking(field: &str, value: &str) -> Result<(), AppError> {
    if crate::secrets::is_encrypted(value) {
        return Err(invalid(field, "must not start with \"enc:\""));
    }
    Ok(())
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), AppError> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    // Stored beside sealed values, where this prefix marks one.
    not_sealed_looking(field, value)
}

/// A secret part: given, or kept from the stored authorization when `kept` has it.
fn credential(
    field: &str,
    given: Option<String>,
    kept: Option<&Secret>,
    header_safe: bool,
) -> Result<Secret, AppError> {
    let Some(value) = given else {
        return kept.cloned().ok_or_else(|| invalid(field, "required"));
    };
    text(field, &value, MAX_CREDENTIAL_CHARS, true)?;
    if header_safe && !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(field, "must be printable ASCII without spaces"));
    }
    not_sealed_looking(field, &value)?;
    Ok(Secret::new(value))
}

async fn auth(
    given: AuthInput,
    current: Option<&Auth<Secret>>,
    allow_private: bool,
) -> Result<Auth<Secret>, AppError> {
    Ok(match given {
        AuthInput::Bearer { token } => {
            let kept = match current {
                Some(Auth::Bearer { token }) => Some(token),
                _ => None,
            };
            Auth::Bearer {
                token: credential("auth.token", token, kept, true)?,
            }
        }
        AuthInput::Basic { username, password } => {
            text("auth.username", &username, MAX_NAME_CHARS, true)?;
            if username.contains(':') {
                return Err(invalid("auth.username", "must not contain ':'"));
            }
            let kept = match current {
                Some(Auth::Basic { password, .. }) => Some(password),
                _ => None,
            };
            Auth::Basic {
                username,
                password: credential("auth.password", password, kept, false)?,
            }
        }
        AuthInput::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
            audience,
        } => {
            let url =
                WebhookUrl::parse(token_url.trim()).map_err(|e| invalid("auth.token_url", e))?;
            url.resolve_checked(allow_private)
                .await
                .map_err(|e| invalid("auth.token_url", e))?;
            text("auth.client_id", &client_id, MAX_NAME_CHARS, true)?;
            for (field, value, max) in [
                ("auth.scope", &scope, MAX_NAME_CHARS),
                ("auth.audience", &audience, 2048),
            ] {
                if let Some(v) = value {
                    text(field, v, max, true)?;
                }
            }
            let kept = match current {
                Some(Auth::OAuth2(o)) => Some(&o.client_secret),
                _ => None,
            };
            Auth::OAuth2(OAuth2 {
                token_url: url.as_str().to_owned(),
                client_id,
                client_secret: credential("auth.client_secret", client_secret, kept, false)?,
                scope,
                audience,
            })
        }
    })
}

fn tls_material(
    given: TlsInput,
    current: &TlsMaterial<Secret>,
) -> Result<TlsMaterial<Secret>, AppError> {
    let nonblank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let ca_pem = nonblank(given.ca_pem);
    let client_cert_pem = nonblank(given.client_cert_pem);
    for (field, value, max) in [
        ("tls.ca_pem", &ca_pem, MAX_CA_PEM_CHARS),
        ("tls.client_cert_pem", &client_cert_pem, MAX_CERT_PEM_CHARS),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(invalid(field, format!("must be at most {max} characters")));
        }
    }
    let client_key_pem = match nonblank(given.client_key_pem) {
        Some(key) => {
            if key.chars().count() > MAX_CERT_PEM_CHARS {
                return Err(invalid(
                    "tls.client_key_pem",
                    format!("must be at most {MAX_CERT_PEM_CHARS} characters"),
                ));
            }
            not_sealed_looking("tls.client_key_pem", &key)?;
            Some(Secret::new(key))
        }
        // Kept while a client certificate is given.
        None if client_cert_pem.is_some() => current.client_key_pem.clone(),
        None => None,
    };
    let material = TlsMaterial {
        ca_pem,
        client_cert_pem,
        client_key_pem,
    };
    tls::check(&material, SystemTime::now()).map_err(|p| invalid(p.field, p.problem))?;
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail<T: fmt::Debug>(r: Result<T, AppError>) -> String {
        match r {
            Err(AppError::Unprocessable(m)) => m,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    fn list(items: &[(&str, Option<&str>)]) -> HeaderList {
        HeaderList(
            items
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
                .collect(),
        )
    }

    #[test]
    fn reserved_and_invalid_header_names_are_named() {
        for name in [
            "Host",
            "Content-Length",
            "content-type",
            "Transfer-Encoding",
            "Connection",
            "X-DECNET-Signature",
            "x-decnet-anything",
            "Webhook-Signature",
        ] {
            let err = detail(headers(list(&[(name, Some("v"))]), &[]));
            assert!(err.starts_with(&format!("headers.{name}: ")), "{err}");
            assert!(err.contains("set by the service"), "{err}");
        }
        let err = detail(headers(list(&[("bad name", Some("v"))]), &[]));
        assert!(
            err.starts_with("headers.\"bad name\": not a valid header name"),
            "{err}"
        );
        let err = detail(headers(list(&[("X-A", Some("a\r\nB: c"))]), &[]));
        assert!(err.starts_with("headers.X-A: "), "{err}");
        let err = detail(headers(
            list(&[("X-A", Some("1")), ("x-a", Some("2"))]),
            &[],
        ));
        assert_eq!(err, "headers.x-a: given twice");
    }

    #[test]
    fn a_null_header_value_keeps_the_stored_one() {
        let stored = vec![Header {
            name: "X-Key".into(),
            value: Secret::new("kept"),
        }];
        let out = headers(list(&[("x-key", None), ("X-New", Some("n"))]), &stored).unwrap();
        assert_eq!(out[0].value.expose(), "kept");
        assert_eq!(out[1].value.expose(), "n");
        let err = detail(headers(list(&[("X-Other", None)]), &stored));
        assert!(
            err.starts_with("headers.X-Other: a value is required"),
            "{err}"
        );
    }

    #[test]
    fn auth_input_is_strict_json() {
        let parse = |s: &str| serde_json::from_str::<AuthInput>(s);
        assert!(matches!(
            parse(r#"{"type":"bearer","token":"t"}"#),
            Ok(AuthInput::Bearer { token: Some(_) })
        ));
        assert!(parse(r#"{"type":"bearer","token":"t","extra":1}"#).is_err());
        assert!(parse(r#"{"type":"digest"}"#).is_err());
        assert!(matches!(
            parse(r#"{"type":"oauth2_client_credentials","token_url":"u","client_id":"c"}"#),
            Ok(AuthInput::OAuth2ClientCredentials {
                client_secret: None,
                ..
            })
        ));
    }

    #[actix_rt::test]
    async fn secrets_left_out_are_kept_only_for_the_same_type() {
        let stored = Auth::Bearer {
            token: Secret::new("stored-token"),
        };
        let kept = auth(AuthInput::Bearer { token: None }, Some(&stored), true)
            .await
            .unwrap();
        assert_eq!(kept, stored);
        let err = detail(
            auth(
                AuthInput::Basic {
                    username: "u".into(),
                    password: None,
                },
                Some(&stored),
                true,
            )
            .await,
        );
        assert_eq!(err, "auth.password: required");
        let err = detail(auth(AuthInput::Bearer { token: None }, None, true).await);
        assert_eq!(err, "auth.token: required");
    }

    #[actix_rt::test]
    async fn auth_and_an_authorization_header_conflict() {
        let input = AccessInput {
            headers: Some(Some(list(&[("Authorization", Some("Splunk x"))]))),
            auth: Some(Some(AuthInput::Bearer {
                token: Some("t".into()),
            })),
            tls: None,
        };
        let err = detail(input.resolve(&ReceiverAccess::default(), true).await);
        assert!(
            err.starts_with("headers.Authorization: conflicts with auth"),
            "{err}"
        );
    }
}
