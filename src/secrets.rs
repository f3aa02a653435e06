//! Subscription secrets at rest: AES-256-GCM under `DECNET_SECRET_KEY`.
//!
//! The same holds for the other write-only values of a subscription (static header
//! values, authorization secrets, the TLS client key): each is sealed bound to its row
//! and to its field ([`SecretStore::seal_field`]), so it opens nowhere else.
//!
//! A stored secret is legacy plaintext, `enc:v1:` (earlier versions) or `enc:v2:` +
//! base64(12-byte random nonce ‖ ciphertext ‖ tag); the prefix names the format. A v2
//! value is bound to its subscription (its uuid is the associated data), so a sealed
//! secret copied into another row does not open there; `decnet secrets encrypt`
//! rewrites plaintext and v1 values as v2. A check
//! value in `webhook_meta`, sealed with the key at the first start that has one, lets
//! every later start tell a wrong key at once, before anything is signed with garbage.

use std::sync::Arc;

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Key, Nonce,
};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use chrono::{DateTime, SubsecRound, Utc};
use entity::{
    meta,
    webhook_subscription::{Column, Entity, Model},
};
use sea_orm::{
    sea_query::Expr, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter,
};

use crate::{
    config::{decode_key, Secret, Settings},
    delivery::access::{self, Header, ReceiverAccess, TlsMaterial},
};

/// Values sealed by earlier versions: not bound to a row; still read.
pub const PREFIX_V1: &str = "enc:v1:";
/// Values sealed now: bound to their subscription.
pub const PREFIX_V2: &str = "enc:v2:";
/// What every encrypted format starts with (a legacy secret starting so is refused
/// by the API: secrets are 16–256 printable characters, never this shape).
const ENCRYPTED_MARK: &str = "enc:";
const NONCE_LEN: usize = 12;
/// The `webhook_meta` key of the check value.
pub const CHECK_KEY: &str = "secret_key_check";
const CHECK_PLAINTEXT: &str = "decnet-webhook secret key check v1";
/// What the check value is bound to (no subscription uuid looks like this).
const CHECK_BINDING: &str = "webhook_meta:secret_key_check";

/// Why a stored secret cannot be used. Never carries the secret or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is encrypted and DECNET_SECRET_KEY is not set")]
    NoKey,
    #[error("the secret does not decrypt with DECNET_SECRET_KEY (wrong key or altered value)")]
    Undecryptable,
    #[error("the secret is stored in an unknown format")]
    UnknownFormat,
}

/// AES-256-GCM with one key.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
    }

    /// `enc:v2:` + base64(nonce ‖ ciphertext ‖ tag), with a fresh random nonce and
    /// `binding` (the subscription uuid) as associated data.
    pub fn seal(&self, binding: &str, plain: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: &aad(binding),
        };
        // Encryption fails only past GCM's length limit (64 GiB); secrets are ≤ 256 chars.
        let sealed = self.0.encrypt(&nonce, payload).unwrap_or_default();
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PREFIX_V2}{}", BASE64.encode(raw))
    }

    /// The plaintext of an encrypted value: v2 must have been sealed for `binding`.
    fn open(&self, binding: &str, stored: &str) -> Result<String, SecretError> {
        let (encoded, aad) = if let Some(v) = stored.strip_prefix(PREFIX_V2) {
            (v, aad(binding))
        } else if let Some(v) = stored.strip_prefix(PREFIX_V1) {
            (v, Vec::new())
        } else {
            return Err(SecretError::UnknownFormat);
        };
        let raw = BASE64
            .decode(encoded)
            .map_err(|_| SecretError::Undecryptable)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: &aad,
        };
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

/// The associated data of a v2 value.
fn aad(binding: &str) -> Vec<u8> {
    format!("decnet-webhook:{binding}").into_bytes()
}

/// Whether a stored value is in an encrypted format (any version).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_MARK)
}

/// Seals and opens stored secrets with the configured key, if any.
#[derive(Clone, Default)]
pub struct SecretStore(Option<Arc<Cipher>>);

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SecretStore(encrypting)"
        } else {
            "SecretStore(plaintext)"
        })
    }
}

impl SecretStore {
    pub fn new(key: Option<&[u8; 32]>) -> Self {
        Self(key.map(|k| Arc::new(Cipher::new(k))))
    }

    /// The store of `DECNET_SECRET_KEY` (already validated when the settings loaded).
    pub fn from_settings(settings: &Settings) -> Self {
        let key = settings
            .secret_key
            .as_ref()
            .and_then(|k| decode_key(k.expose()));
        Self::new(key.as_ref())
    }

    pub fn encrypts(&self) -> bool {
        self.0.is_some()
    }

    /// The form to store for subscription `uuid`: sealed with a key, else the
    /// plaintext itself.
    pub fn seal(&self, uuid: &str, plain: &str) -> String {
        match &self.0 {
            Some(c) => c.seal(uuid, plain),
            None => plain.to_owned(),
        }
    }

    /// The form to store for field `label` (a [`crate::delivery::access`] label) of
    /// subscription `uuid`: bound to both, so it does not open in another field.
    pub fn seal_field(&self, uuid: &str, label: &str, plain: &str) -> String {
        self.seal(&field_binding(uuid, label), plain)
    }

    /// A value stored with [`Self::seal_field`] (or plaintext, without a key).
    pub fn open_field(&self, uuid: &str, label: &str, stored: &str) -> Result<Secret, SecretError> {
        self.open(&field_binding(uuid, label), stored)
    }

    /// How the worker reaches the receiver of `row`: its stored headers,
    /// authorization and TLS material, secret parts opened. A stored value that does
    /// not parse counts as one in an unknown format.
    pub fn receiver_access(&self, row: &Model) -> Result<ReceiverAccess, SecretError> {
        let uuid = row.uuid.as_str();
        let headers = access::parse_headers(row.headers.as_deref())
            .map_err(|_| SecretError::UnknownFormat)?
            .into_iter()
            .map(|h| {
                let value = self.open_field(uuid, &access::header_label(&h.name), &h.value)?;
                Ok(Header {
                    name: h.name,
                    value,
                })
            })
            .collect::<Result<_, SecretError>>()?;
        let auth = access::parse_auth(row.auth.as_deref())
            .map_err(|_| SecretError::UnknownFormat)?
            .map(|a| a.try_map(|label, stored| self.open_field(uuid, label, &stored)))
            .transpose()?;
        let tls = TlsMaterial {
            ca_pem: row.tls_ca_pem.clone(),
            client_cert_pem: row.tls_client_cert_pem.clone(),
            client_key_pem: row
                .tls_client_key_pem
                .as_deref()
                .map(|k| self.open_field(uuid, access::CLIENT_KEY, k))
                .transpose()?,
        };
        Ok(ReceiverAccess { headers, auth, tls })
    }

    /// The stored columns of `access` for subscription `uuid`, secret parts sealed.
    pub fn seal_access(&self, uuid: &str, access: &ReceiverAccess) -> SealedAccess {
        let headers: Vec<Header<String>> = access
            .headers
            .iter()
            .map(|h| Header {
                name: h.name.clone(),
                value: self.seal_field(uuid, &access::header_label(&h.name), h.value.expose()),
            })
            .collect();
        let auth = access.auth.clone().map(|a| {
            infallible(a.try_map(|label, secret| Ok(self.seal_field(uuid, label, secret.expose()))))
        });
        SealedAccess {
            headers: access::headers_column(&headers),
            auth: access::auth_column(auth.as_ref()),
            tls_ca_pem: access.tls.ca_pem.clone(),
            tls_client_cert_pem: access.tls.client_cert_pem.clone(),
            tls_client_key_pem: access
                .tls
                .client_key_pem
                .as_ref()
                .map(|k| self.seal_field(uuid, access::CLIENT_KEY, k.expose())),
        }
    }

    /// A stored value of subscription `uuid` as it should be stored now: with a key,
    /// legacy plaintext and v1 values are sealed as v2; a v2 value is kept, and so is
    /// any value that does not open (it is never replaced by something else).
    pub fn reseal(&self, uuid: &str, stored: &str) -> String {
        match &self.0 {
            Some(c) if !stored.starts_with(PREFIX_V2) => match self.open(uuid, stored) {
                Ok(plain) => c.seal(uuid, plain.expose()),
                Err(_) => stored.to_owned(),
            },
            _ => stored.to_owned(),
        }
    }

    /// The secret of subscription `uuid` from its stored value; legacy plaintext (no
    /// prefix) is returned as is.
    pub fn open(&self, uuid: &str, stored: &str) -> Result<Secret, SecretError> {
        if !is_encrypted(stored) {
            return Ok(Secret::new(stored));
        }
        match &self.0 {
            Some(c) => c.open(uuid, stored).map(Secret::new),
            None if stored.starts_with(PREFIX_V1) || stored.starts_with(PREFIX_V2) => {
                Err(SecretError::NoKey)
            }
            None => Err(SecretError::UnknownFormat),
        }
    }

    /// The secrets a delivery for `row` is signed with at `now`, newest first: the
    /// current one, and the previous one while its rotation window is open.
    pub fn signing_secrets(
        &self,
        row: &Model,
        now: DateTime<Utc>,
    ) -> Result<Vec<Secret>, SecretError> {
        let mut secrets = vec![self.open(&row.uuid, &row.secret)?];
        if let Some((previous, _)) = self.previous(row, now)? {
            secrets.push(previous);
        }
        Ok(secrets)
    }

    /// The previous secret and when it stops signing, if that is after `now`.
    pub fn previous(
        &self,
        row: &Model,
        now: DateTime<Utc>,
    ) -> Result<Option<(Secret, DateTime<Utc>)>, SecretError> {
        match (&row.previous_secret, row.previous_secret_expires_at) {
            (Some(stored), Some(expires)) if expires > now => {
                Ok(Some((self.open(&row.uuid, stored)?, expires)))
            }
            _ => Ok(None),
        }
    }
}

/// What binds a field's value: its row and its label (a uuid has no `#`).
fn field_binding(uuid: &str, label: &str) -> String {
    format!("{uuid}#{label}")
}

fn infallible<T>(r: Result<T, std::convert::Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// The stored columns of a receiver's access.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SealedAccess {
    pub headers: Option<String>,
    pub auth: Option<String>,
    pub tls_ca_pem: Option<String>,
    pub tls_client_cert_pem: Option<String>,
    pub tls_client_key_pem: Option<String>,
}

/// Why a start must stop: one line naming `DECNET_SECRET_KEY`.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("DECNET_SECRET_KEY is not the key the stored webhook secrets were encrypted with")]
    WrongKey,
    #[error("DECNET_SECRET_KEY is not set, but the stored webhook secrets are encrypted; set the key they were encrypted with")]
    KeyMissing,
    #[error("database error while checking DECNET_SECRET_KEY: {0}")]
    Db(String),
}

impl From<DbErr> for KeyCheckError {
    fn from(e: DbErr) -> Self {
        Self::Db(crate::error::redact_db_error(&e))
    }
}

/// Check the configured key against the database before anything signs or writes:
/// with a key, the stored check value must open (written now if there is none yet,
/// after any encrypted row proves it is the right key); without one, nothing stored
/// may be encrypted.
pub async fn check_key(db: &DatabaseConnection, store: &SecretStore) -> Result<(), KeyCheckError> {
    let stored_check = meta::Entity::find_by_id(CHECK_KEY.to_owned())
        .one(db)
        .await?;
    let Some(cipher) = &store.0 else {
        if stored_check.is_some() || count_encrypted(db).await? > 0 {
            return Err(KeyCheckError::KeyMissing);
        }
        return Ok(());
    };
    let opens = |value: &str| {
        cipher
            .open(CHECK_BINDING, value)
            .is_ok_and(|plain| plain == CHECK_PLAINTEXT)
    };
    if let Some(check) = stored_check {
        return if opens(&check.value) {
            Ok(())
        } else {
            Err(KeyCheckError::WrongKey)
        };
    }
    // No check value yet: rows encrypted before it existed must open with this key.
    let sample = Entity::find().filter(encrypted_condition()).one(db).await?;
    if let Some(row) = sample {
        let secret_opens = store.open(&row.uuid, &row.secret).is_ok();
        let previous_opens = row
            .previous_secret
            .as_deref()
            .is_none_or(|p| store.open(&row.uuid, p).is_ok());
        if !(secret_opens && previous_opens) {
            return Err(KeyCheckError::WrongKey);
        }
    }
    let check = meta::ActiveModel {
        key: sea_orm::Set(CHECK_KEY.to_owned()),
        value: sea_orm::Set(cipher.seal(CHECK_BINDING, CHECK_PLAINTEXT)),
        updated_at: sea_orm::Set(Utc::now().trunc_subsecs(6)),
    };
    // Two processes starting together: the first check value written wins, and both
    // verify against it.
    meta::Entity::insert(check)
        .on_conflict_do_nothing_on([meta::Column::Key])
        .exec(db)
        .await?;
    let written = meta::Entity::find_by_id(CHECK_KEY.to_owned())
        .one(db)
        .await?
        .ok_or(KeyCheckError::WrongKey)?;
    if opens(&written.value) {
        tracing::info!("secret key check value stored");
        Ok(())
    } else {
        Err(KeyCheckError::WrongKey)
    }
}

fn encrypted_condition() -> Condition {
    // In the JSON columns a sealed value is a string starting with the mark.
    let in_json = format!("\"{ENCRYPTED_MARK}");
    Condition::any()
        .add(Column::Secret.starts_with(ENCRYPTED_MARK))
        .add(Column::PreviousSecret.starts_with(ENCRYPTED_MARK))
        .add(Column::TlsClientKeyPem.starts_with(ENCRYPTED_MARK))
        .add(Column::Headers.contains(in_json.as_str()))
        .add(Column::Auth.contains(in_json.as_str()))
}

async fn count_encrypted(db: &DatabaseConnection) -> Result<u64, DbErr> {
    Entity::find().filter(encrypted_condition()).count(db).await
}

/// `decnet secrets encrypt`: seal every `secret` and `previous_secret` not yet in the
/// current format (legacy plaintext, or v1 which is not bound to its row) in place;
/// returns how many rows changed. Idempotent. A value that does not open is left as
/// it is. Each write only lands if the value is still the one read, so a concurrent
/// change is never overwritten.
pub async fn seal_rows_in_current_format(
    db: &DatabaseConnection,
    store: &SecretStore,
) -> Result<u64, DbErr> {
    if !store.encrypts() {
        return Ok(0);
    }
    let current = format!("{PREFIX_V2}%");
    let rows = Entity::find()
        .filter(
            Condition::any()
                .add(Column::Secret.not_like(current.as_str()))
                .add(
                    Condition::all()
                        .add(Column::PreviousSecret.is_not_null())
                        .add(Column::PreviousSecret.not_like(current.as_str())),
                )
                // Rows with receiver access are looked at value by value.
                .add(Column::Headers.is_not_null())
                .add(Column::Auth.is_not_null())
                .add(Column::TlsClientKeyPem.is_not_null()),
        )
        .all(db)
        .await?;
    let mut converted = 0;
    for row in rows {
        let mut update = Entity::update_many().filter(Column::Uuid.eq(row.uuid.as_str()));
        let mut changed = false;
        let secret = store.reseal(&row.uuid, &row.secret);
        if secret != row.secret {
            update = update
                .col_expr(Column::Secret, Expr::value(secret))
                .filter(Column::Secret.eq(row.secret.as_str()));
            changed = true;
        }
        if let Some(previous) = row.previous_secret.as_deref() {
            let resealed = store.reseal(&row.uuid, previous);
            if resealed != previous {
                update = update
                    .col_expr(Column::PreviousSecret, Expr::value(resealed))
                    .filter(Column::PreviousSecret.eq(previous));
                changed = true;
            }
        }
        let access = resealed_access(store, &row);
        for (column, stored, resealed) in [
            (Column::Headers, &row.headers, access.headers),
            (Column::Auth, &row.auth, access.auth),
            (Column::TlsClientKeyPem, &row.tls_client_key_pem, access.key),
        ] {
            if let (Some(stored), Some(resealed)) = (stored.as_deref(), resealed) {
                if resealed != stored {
                    update = update
                        .col_expr(column, Expr::value(resealed))
                        .filter(column.eq(stored));
                    changed = true;
                }
            }
        }
        if changed && update.exec(db).await?.rows_affected > 0 {
            converted += 1;
        }
    }
    Ok(converted)
}

/// The receiver-access columns of a row as they should be stored now (each value
/// through [`SecretStore::reseal`]); `None` for a column that is absent or does not
/// parse (left as it is).
struct ResealedAccess {
    headers: Option<String>,
    auth: Option<String>,
    key: Option<String>,
}

fn resealed_access(store: &SecretStore, row: &Model) -> ResealedAccess {
    let uuid = row.uuid.as_str();
    let headers = access::parse_headers(row.headers.as_deref())
        .ok()
        .filter(|h| !h.is_empty())
        .map(|headers| {
            let headers: Vec<_> = headers
                .into_iter()
                .map(|h| Header {
                    value: store.reseal(
                        &field_binding(uuid, &access::header_label(&h.name)),
                        &h.value,
                    ),
                    name: h.name,
                })
                .collect();
            access::headers_column(&headers).unwrap_or_default()
        });
    let auth = access::parse_auth(row.auth.as_deref())
        .ok()
        .flatten()
        .map(|a| {
            let a =
                infallible(a.try_map(|label, stored| {
                    Ok(store.reseal(&field_binding(uuid, label), &stored))
                }));
            access::auth_column(Some(&a)).unwrap_or_default()
        });
    let key = row
        .tls_client_key_pem
        .as_deref()
        .map(|k| store.reseal(&field_binding(uuid, access::CLIENT_KEY), k));
    ResealedAccess { headers, auth, key }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const ROW: &str = "0b8c1d52-6f3e-4b7a-9d0e-2f1a3c4b5d6e";
    const OTHER_ROW: &str = "7e6d5c4b-3a2f-4e1d-8c0b-9a8f7e6d5c4b";

    fn store() -> SecretStore {
        SecretStore::new(Some(&KEY))
    }

    /// A v1 value as earlier versions sealed it (no associated data).
    fn sealed_v1(plain: &str) -> String {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&KEY));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut raw = nonce.to_vec();
        raw.extend(cipher.encrypt(&nonce, plain.as_bytes()).unwrap());
        format!("{PREFIX_V1}{}", BASE64.encode(raw))
    }

    #[test]
    fn seal_then_open_round_trips() {
        let s = store();
        let sealed = s.seal(ROW, "a-receiver-secret-of-some-length");
        assert!(sealed.starts_with(PREFIX_V2));
        assert!(!sealed.contains("receiver"));
        assert_eq!(
            s.open(ROW, &sealed).unwrap().expose(),
            "a-receiver-secret-of-some-length"
        );
    }

    #[test]
    fn a_sealed_secret_does_not_open_in_another_row() {
        let s = store();
        let sealed = s.seal(ROW, "a-receiver-secret-of-some-length");
        assert_eq!(s.open(OTHER_ROW, &sealed), Err(SecretError::Undecryptable));
    }

    #[test]
    fn v1_values_still_open_and_reseal_binds_them() {
        let s = store();
        let v1 = sealed_v1("an-older-secret-of-some-length");
        assert_eq!(
            s.open(ROW, &v1).unwrap().expose(),
            "an-older-secret-of-some-length"
        );
        let v2 = s.reseal(ROW, &v1);
        assert!(v2.starts_with(PREFIX_V2), "{v2}");
        assert_eq!(
            s.open(ROW, &v2).unwrap().expose(),
            "an-older-secret-of-some-length"
        );
        assert_eq!(s.open(OTHER_ROW, &v2), Err(SecretError::Undecryptable));
        // Already current, or not openable: kept as it is.
        assert_eq!(s.reseal(ROW, &v2), v2);
        let foreign = SecretStore::new(Some(&[8; 32])).seal(ROW, "x-secret-x-secret");
        assert_eq!(s.reseal(ROW, &foreign), foreign);
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let s = store();
        let (a, b) = (s.seal(ROW, "same secret"), s.seal(ROW, "same secret"));
        assert_ne!(a, b);
        let nonce = |v: &str| BASE64.decode(&v[PREFIX_V2.len()..]).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
        assert_eq!(s.open(ROW, &a).unwrap(), s.open(ROW, &b).unwrap());
    }

    #[test]
    fn a_tampered_value_is_refused() {
        let s = store();
        let sealed = s.seal(ROW, "a-receiver-secret-of-some-length");
        let mut raw = BASE64.decode(&sealed[PREFIX_V2.len()..]).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let altered = format!("{PREFIX_V2}{}", BASE64.encode(&raw));
            assert_eq!(
                s.open(ROW, &altered),
                Err(SecretError::Undecryptable),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        for garbage in ["enc:v2:", "enc:v2:!!!", "enc:v1:AAAA"] {
            assert_eq!(s.open(ROW, garbage), Err(SecretError::Undecryptable));
        }
        assert_eq!(s.open(ROW, "enc:v9:AAAA"), Err(SecretError::UnknownFormat));
    }

    #[test]
    fn legacy_plaintext_passes_through() {
        for s in [store(), SecretStore::default()] {
            assert_eq!(
                s.open(ROW, "plain-legacy-secret").unwrap().expose(),
                "plain-legacy-secret"
            );
        }
        assert_eq!(SecretStore::default().seal(ROW, "x-secret"), "x-secret");
        let sealed = store().reseal(ROW, "plain-legacy-secret");
        assert!(sealed.starts_with(PREFIX_V2));
        assert_eq!(store().reseal(ROW, &sealed), sealed);
    }

    #[test]
    fn a_wrong_key_or_no_key_cannot_open() {
        let sealed = store().seal(ROW, "a-receiver-secret-of-some-length");
        let other = SecretStore::new(Some(&[8; 32]));
        assert_eq!(other.open(ROW, &sealed), Err(SecretError::Undecryptable));
        assert_eq!(
            SecretStore::default().open(ROW, &sealed),
            Err(SecretError::NoKey)
        );
        assert_eq!(
            SecretStore::default().open(ROW, &sealed_v1("x-secret-x-secret")),
            Err(SecretError::NoKey)
        );
    }

    #[test]
    fn a_sealed_field_opens_only_in_its_row_and_field() {
        let s = store();
        let sealed = s.seal_field(ROW, access::TOKEN, "bearer-token-value");
        assert!(sealed.starts_with(PREFIX_V2));
        assert_eq!(
            s.open_field(ROW, access::TOKEN, &sealed).unwrap().expose(),
            "bearer-token-value"
        );
        for (row, label) in [(ROW, access::PASSWORD), (OTHER_ROW, access::TOKEN)] {
            assert_eq!(
                s.open_field(row, label, &sealed),
                Err(SecretError::Undecryptable)
            );
        }
        // Nor as the signing secret.
        assert_eq!(s.open(ROW, &sealed), Err(SecretError::Undecryptable));
    }

    #[test]
    fn errors_and_debug_never_show_secrets() {
        let s = store();
        let opened = s
            .open(ROW, &s.seal(ROW, "hunter2-hunter2-hunter2"))
            .unwrap();
        assert!(!format!("{opened:?}").contains("hunter2"));
        assert!(!format!("{s:?}").contains(&format!("{:?}", KEY)));
    }
}
