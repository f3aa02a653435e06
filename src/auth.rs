//! Password hashing (argon2id) and access tokens (HS256 JWT).

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "decnet";
pub const AUDIENCE: &str = "decnet-dashboard";
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest user name, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// How far in the future a token's `nbf` and `iat` may lie: room for a clock that
/// steps back a little, or for servers sharing the key whose clocks differ slightly.
pub const CLOCK_LEEWAY_SECS: i64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Constant-shape check; a malformed stored hash simply fails.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid hash of a random password, verified against when the user is unknown so
/// that "no such user" costs the same time as "wrong password".
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = uuid::Uuid::new_v4().to_string();
        hash_password(&random).unwrap_or_default()
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub typ: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The user's token version when it was issued; the token is void once that moves on.
    pub ver: i32,
}

/// HS256 keys derived once from `DECNET_JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime_minutes: i64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], lifetime_minutes: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        // `nbf` and `iat` are checked in `verify` with a leeway `exp` does not get.
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime_minutes,
        }
    }

    /// A token for the user `user_uuid` at its current `token_version`.
    pub fn issue(
        &self,
        user_uuid: &str,
        role: Role,
        token_version: i32,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_uuid.to_owned(),
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: "access".into(),
            iat: now,
            nbf: now,
            exp: now + self.lifetime_minutes * 60,
            ver: token_version,
        };
        self.sign(&claims)
    }

    /// Sign `claims` as they are (tests forge tokens with it).
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Signature, algorithm, issuer, audience, expiry, `typ`, and that neither `nbf`
    /// nor `iat` lies in the future. Whether `ver` is still the user's is the caller's
    /// check: it needs the database.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        let latest = chrono::Utc::now().timestamp() + CLOCK_LEEWAY_SECS;
        (claims.typ == "access" && claims.nbf <= latest && claims.iat <= latest).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse!", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
        assert!(!verify_password("anything", dummy_hash()));
    }

    #[test]
    fn tokens_round_trip_and_reject_forgery() {
        let keys = JwtKeys::new(&[7u8; 32], 5);
        let token = keys.issue("u-1", Role::Viewer, 3).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("u-1", Role::Viewer));
        assert_eq!(claims.ver, 3);
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            (ISSUER, AUDIENCE)
        );
        let other = JwtKeys::new(&[8u8; 32], 5);
        assert!(other.verify(&token).is_none());
        let expired = JwtKeys::new(&[7u8; 32], -1)
            .issue("u-1", Role::Admin, 0)
            .unwrap();
        assert!(keys.verify(&expired).is_none());
        assert!(keys.verify("not.a.token").is_none());
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let keys = JwtKeys::new(&[7u8; 32], 5);
        let token = keys.issue("u-1", Role::Admin, 0).unwrap();
        let claims = keys.verify(&token).unwrap();
        let ahead = claims.iat + CLOCK_LEEWAY_SECS + 60;
        for (what, future) in [
            (
                "nbf",
                Claims {
                    nbf: ahead,
                    ..claims.clone()
                },
            ),
            (
                "iat",
                Claims {
                    iat: ahead,
                    ..claims.clone()
                },
            ),
        ] {
            let token = keys.sign(&future).unwrap();
            assert!(keys.verify(&token).is_none(), "{what} in the future");
        }
        // Within the leeway is accepted.
        let slightly = Claims {
            iat: claims.iat + 1,
            nbf: claims.nbf + 1,
            ..claims.clone()
        };
        assert!(keys.verify(&keys.sign(&slightly).unwrap()).is_some());
    }

    #[test]
    fn tokens_without_nbf_or_ver_are_refused() {
        let keys = JwtKeys::new(&[7u8; 32], 5);
        let claims = keys
            .verify(&keys.issue("u-1", Role::Admin, 0).unwrap())
            .unwrap();
        for missing in ["nbf", "ver"] {
            let mut value = serde_json::to_value(&claims).unwrap();
            value.as_object_mut().unwrap().remove(missing);
            let token = encode(&Header::new(Algorithm::HS256), &value, &keys.encoding).unwrap();
            assert!(keys.verify(&token).is_none(), "a token without {missing}");
        }
    }
}
