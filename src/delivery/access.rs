//! How a receiver is reached beyond its URL: static headers, an `Authorization`
//! scheme and TLS material. The types are generic over how their secret parts are
//! held: `String` as stored (sealed with `DECNET_SECRET_KEY`, or plaintext without
//! one), [`Secret`] once opened. Each secret part has a label, so a value sealed for
//! one field does not open in another.

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// The label of the bearer token.
pub const TOKEN: &str = "auth.token";
/// The label of the basic password.
pub const PASSWORD: &str = "auth.password";
/// The label of the OAuth2 client secret.
pub const CLIENT_SECRET: &str = "auth.client_secret";
/// The label of the TLS client key.
pub const CLIENT_KEY: &str = "tls.client_key_pem";

/// The label of a static header's value.
pub fn header_label(name: &str) -> String {
    format!("headers.{}", name.to_ascii_lowercase())
}

/// One static request header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header<S> {
    pub name: String,
    pub value: S,
}

/// How each request authenticates (its `Authorization` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth<S> {
    /// `Authorization: Bearer <token>`.
    Bearer { token: S },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: S },
    /// A bearer token from an OAuth2 token endpoint (client credentials grant).
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2(OAuth2<S>),
}

/// The OAuth2 client credentials grant (RFC 6749 §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth2<S> {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl<S> Auth<S> {
    /// The same scheme with its secret part mapped through `f` (given its label).
    pub fn try_map<T, E>(
        self,
        f: impl FnOnce(&'static str, S) -> Result<T, E>,
    ) -> Result<Auth<T>, E> {
        Ok(match self {
            Self::Bearer { token } => Auth::Bearer {
                token: f(TOKEN, token)?,
            },
            Self::Basic { username, password } => Auth::Basic {
                username,
                password: f(PASSWORD, password)?,
            },
            Self::OAuth2(o) => Auth::OAuth2(OAuth2 {
                client_secret: f(CLIENT_SECRET, o.client_secret)?,
                token_url: o.token_url,
                client_id: o.client_id,
                scope: o.scope,
                audience: o.audience,
            }),
        })
    }

    /// The name of the scheme, as the API spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bearer { .. } => "bearer",
            Self::Basic { .. } => "basic",
            Self::OAuth2(_) => "oauth2_client_credentials",
        }
    }
}

/// TLS material for one receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsMaterial<S> {
    /// CA certificates (PEM) trusted for this receiver instead of the public roots.
    pub ca_pem: Option<String>,
    /// The client certificate chain (PEM), end-entity first.
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key (PEM).
    pub client_key_pem: Option<S>,
}

impl<S> Default for TlsMaterial<S> {
    fn default() -> Self {
        Self {
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
        }
    }
}

impl<S> TlsMaterial<S> {
    pub fn is_empty(&self) -> bool {
        self.ca_pem.is_none() && self.client_cert_pem.is_none() && self.client_key_pem.is_none()
    }
}

/// Everything about reaching one receiver beyond its URL, secrets opened.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReceiverAccess {
    pub headers: Vec<Header<Secret>>,
    pub auth: Option<Auth<Secret>>,
    pub tls: TlsMaterial<Secret>,
}

impl ReceiverAccess {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.auth.is_none() && self.tls.is_empty()
    }
}

/// The stored headers column: a JSON list (absent: none).
pub fn parse_headers(stored: Option<&str>) -> Result<Vec<Header<String>>, serde_json::Error> {
    stored.map_or(Ok(Vec::new()), serde_json::from_str)
}

/// The stored auth column: a JSON object (absent: none).
pub fn parse_auth(stored: Option<&str>) -> Result<Option<Auth<String>>, serde_json::Error> {
    stored.map(serde_json::from_str).transpose()
}

/// The headers column for `headers` (`None` when there are none).
pub fn headers_column(headers: &[Header<String>]) -> Option<String> {
    (!headers.is_empty()).then(|| serde_json::to_string(headers).unwrap_or_default())
}

/// The auth column for `auth`.
pub fn auth_column(auth: Option<&Auth<String>>) -> Option<String> {
    auth.map(|a| serde_json::to_string(a).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_round_trip() {
        let auth = Auth::OAuth2(OAuth2 {
            token_url: "https://idp.example/token".into(),
            client_id: "decnet".into(),
            client_secret: "enc:v2:xyz".to_owned(),
            scope: Some("write".into()),
            audience: None,
        });
        let column = auth_column(Some(&auth)).unwrap();
        assert!(
            column.contains(r#""type":"oauth2_client_credentials""#),
            "{column}"
        );
        assert_eq!(parse_auth(Some(&column)).unwrap(), Some(auth));
        let headers = vec![Header {
            name: "X-Api-Key".into(),
            value: "v".to_owned(),
        }];
        let column = headers_column(&headers).unwrap();
        assert_eq!(parse_headers(Some(&column)).unwrap(), headers);
        assert_eq!(headers_column(&[]), None);
    }

    #[test]
    fn mapping_labels_each_secret_part() {
        let mut seen = "";
        let basic = Auth::Basic {
            username: "u".into(),
            password: "p".to_owned(),
        };
        let mapped = basic
            .try_map(|label, v| {
                seen = label;
                Ok::<_, ()>(v.len())
            })
            .unwrap();
        assert_eq!(seen, PASSWORD);
        assert_eq!(
            mapped,
            Auth::Basic {
                username: "u".into(),
                password: 1
            }
        );
        assert_eq!(header_label("X-Key"), "headers.x-key");
    }
}
