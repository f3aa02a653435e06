//! Per-receiver TLS: a private CA bundle trusted instead of the public roots, and a
//! client certificate for mutual TLS. PEM material is checked when it is saved
//! ([`check`]) and built into a rustls `ClientConfig` once per subscription
//! ([`TlsSettings::build`]); senders keep one HTTP client per distinct setting.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    sign::CertifiedKey,
    ClientConfig, RootCertStore,
};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode as _;

use super::access::TlsMaterial;
use crate::config::Secret;

/// At most this many certificates in a CA bundle or a client chain.
pub const MAX_CERTS: usize = 64;

/// Why a PEM field cannot be used: its field and the problem, as a 422 names them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TlsProblem {
    pub field: &'static str,
    pub problem: String,
}

fn problem(field: &'static str, problem: impl Into<String>) -> TlsProblem {
    TlsProblem {
        field,
        problem: problem.into(),
    }
}

/// The TLS of one receiver, ready for a sender: a rustls configuration (or why
/// there is none, which fails each delivery) and a fingerprint of the material, by
/// which senders share one HTTP client among subscriptions with the same settings.
#[derive(Clone)]
pub struct TlsSettings {
    pub fingerprint: [u8; 32],
    pub config: Result<Arc<ClientConfig>, String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings(")?;
        f.write_str(&hex::encode(&self.fingerprint[..8]))?;
        f.write_str(")")
    }
}

impl TlsSettings {
    /// `None` when the material is empty: the default client serves.
    pub fn build(material: &TlsMaterial<Secret>) -> Option<Self> {
        if material.is_empty() {
            return None;
        }
        let mut digest = Sha256::new();
        for part in [
            material.ca_pem.as_deref(),
            material.client_cert_pem.as_deref(),
            material.client_key_pem.as_ref().map(Secret::expose),
        ] {
            let part = part.unwrap_or_default();
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        Some(Self {
            fingerprint: digest.finalize().into(),
            config: client_config(material)
                .map(Arc::new)
                .map_err(|p| format!("tls settings: {p}")),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Check material before it is stored: each PEM parses, the key matches the
/// certificate, and no certificate is outside its validity period at `now`.
pub fn check(material: &TlsMaterial<Secret>, now: SystemTime) -> Result<(), TlsProblem> {
    if let Some(ca) = &material.ca_pem {
        for (i, cert) in certificates("tls.ca_pem", ca)?.iter().enumerate() {
            valid_at("tls.ca_pem", i, cert, now)?;
        }
    }
    match (&material.client_cert_pem, &material.client_key_pem) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(problem(
            "tls.client_key_pem",
            "required with client_cert_pem",
        )),
        (None, Some(_)) => Err(problem(
            "tls.client_cert_pem",
            "required with client_key_pem",
        )),
        (Some(cert), Some(key)) => {
            let chain = certificates("tls.client_cert_pem", cert)?;
            for (i, cert) in chain.iter().enumerate() {
                valid_at("tls.client_cert_pem", i, cert, now)?;
            }
            certified_key(chain, key).map(|_| ())
        }
    }
}

/// Every certificate of a PEM text; anything else in it is ignored, as TLS tools do,
/// but there must be at least one.
fn certificates(
    field: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = item.map_err(|e| problem(field, format!("not PEM: {e}")))?;
        if certs.len() == MAX_CERTS {
            return Err(problem(
                field,
                format!("at most {MAX_CERTS} certificates are allowed"),
            ));
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(problem(
            field,
            "not PEM: no \"-----BEGIN CERTIFICATE-----\" block",
        ));
    }
    Ok(certs)
}

fn private_key(pem: &Secret) -> Result<PrivateKeyDer<'static>, TlsProblem> {
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|_| {
        problem(
            "tls.client_key_pem",
            "not PEM: no unencrypted PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key block",
        )
    })
}

/// The chain with its key, checked to belong together.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &Secret,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsProblem> {
    let key = private_key(key)?;
    match CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()) {
        Ok(_) => Ok((chain, key)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(problem(
            "tls.client_key_pem",
            "the key does not match the certificate",
        )),
        Err(e) => Err(problem(
            "tls.client_key_pem",
            format!("unusable key or certificate: {e}"),
        )),
    }
}

fn valid_at(
    field: &'static str,
    index: usize,
    der: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<(), TlsProblem> {
    let which = |what: &str| format!("certificate {} {what}", index + 1);
    let cert = x509_cert::Certificate::from_der(der.as_ref()).map_err(|e| {
        problem(
            field,
            which(&format!("is not a valid X.509 certificate: {e}")),
        )
    })?;
    let validity = &cert.tbs_certificate.validity;
    let (from, until) = (
        SystemTime::UNIX_EPOCH + validity.not_before.to_unix_duration(),
        SystemTime::UNIX_EPOCH + validity.not_after.to_unix_duration(),
    );
    if until < now {
        return Err(problem(
            field,
            which(&format!("expired on {}", date(until))),
        ));
    }
    if from > now {
        return Err(problem(
            field,
            which(&format!("is not valid before {}", date(from))),
        ));
    }
    Ok(())
}

fn date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0).map_or_else(
        || "a date out of range".into(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The rustls configuration of the material: only its CAs trusted when it has any,
/// else the public roots; its client certificate presented when asked for.
fn client_config(material: &TlsMaterial<Secret>) -> Result<ClientConfig, TlsProblem> {
    let roots = match &material.ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls.ca_pem", pem)? {
                roots
                    .add(cert)
                    .map_err(|e| problem("tls.ca_pem", format!("not a usable CA: {e}")))?;
            }
            roots
        }
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| problem("tls", e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (&material.client_cert_pem, &material.client_key_pem) {
        (Some(cert), Some(key)) => {
            let (chain, key) = certified_key(certificates("tls.client_cert_pem", cert)?, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| problem("tls.client_key_pem", e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    // As the default client offers.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsMaterial<Secret> {
        TlsMaterial {
            ca_pem: ca.map(str::to_owned),
            client_cert_pem: cert.map(str::to_owned),
            client_key_pem: key.map(Secret::new),
        }
    }

    #[test]
    fn text_that_is_not_pem_is_named() {
        let err = check(&material(Some("hello"), None, None), SystemTime::now()).unwrap_err();
        assert_eq!(err.field, "tls.ca_pem");
        assert!(err.problem.starts_with("not PEM"), "{err}");
        let err = check(&material(None, Some("x"), None), SystemTime::now()).unwrap_err();
        assert_eq!(err.field, "tls.client_key_pem");
    }

    #[test]
    fn empty_material_needs_no_client() {
        assert!(TlsSettings::build(&TlsMaterial::default()).is_none());
        assert!(check(&TlsMaterial::default(), SystemTime::now()).is_ok());
    }
}
