//! Body signatures and the header values that carry them: DECNET's
//! `X-DECNET-Signature` and Standard Webhooks' `webhook-signature`.
//!
//! Every secret signs, newest first, so a receiver keeps verifying across a rotation:
//! `X-DECNET-Signature: sha256=<new>,sha256=<old>` and
//! `webhook-signature: v1,<new> v1,<old>`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=` and 64 hex digits.
const DECNET_LEN: usize = 7 + 64;
/// `v1,` and 44 base64 characters.
const STANDARD_LEN: usize = 3 + 44;

/// The two signature header values of one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signatures {
    /// `X-DECNET-Signature`.
    pub decnet: String,
    /// Standard Webhooks `webhook-signature`.
    pub standard: String,
}

/// Both signatures for every secret. Each secret is keyed once and the keyed state
/// cloned for the second MAC, so a send costs one key schedule per secret.
pub fn sign(secrets: &[Secret], msg_id: &str, timestamp: u64, body: &[u8]) -> Signatures {
    let mut decnet = String::with_capacity(secrets.len() * (DECNET_LEN + 1));
    let mut standard = String::with_capacity(secrets.len() * (STANDARD_LEN + 1));
    let mut digits = [0u8; 20];
    let timestamp = decimal(timestamp, &mut digits);
    for secret in secrets {
        let Some(keyed) = key(secret) else { continue };

        let mut mac = keyed.clone();
        mac.update(body);
        if !decnet.is_empty() {
            decnet.push(',');
        }
        decnet.push_str("sha256=");
        push_hex(&mut decnet, &mac.finalize().into_bytes());

        let mut mac = keyed;
        for part in [msg_id.as_bytes(), b".", timestamp, b".", body] {
            mac.update(part);
        }
        if !standard.is_empty() {
            standard.push(' ');
        }
        standard.push_str("v1,");
        base64::engine::general_purpose::STANDARD
            .encode_string(mac.finalize().into_bytes(), &mut standard);
    }
    Signatures { decnet, standard }
}

/// `X-DECNET-Signature` alone: `sha256=` + lowercase hex HMAC-SHA256 of the body.
pub fn decnet_signature(secrets: &[Secret], body: &[u8]) -> String {
    sign(secrets, "", 0, body).decnet
}

/// `webhook-signature` alone: `v1,` + base64 HMAC-SHA256 of `{msg_id}.{timestamp}.{body}`.
pub fn standard_signature(secrets: &[Secret], msg_id: &str, timestamp: u64, body: &[u8]) -> String {
    sign(secrets, msg_id, timestamp, body).standard
}

fn key(secret: &Secret) -> Option<HmacSha256> {
    // HMAC takes keys of any length; the error arm is unreachable.
    HmacSha256::new_from_slice(secret.expose().as_bytes()).ok()
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// `n` in decimal, written into `buf` without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|s| Secret::new(*s)).collect()
    }

    #[test]
    fn decimal_writes_every_width() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(1_777_024_800, &mut buf), b"1777024800");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn matches_a_reference_hmac() {
        // RFC 4231 test case 2.
        let sig = decnet_signature(&secrets(&["Jefe"]), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_covers_id_timestamp_and_body() {
        let s = secrets(&["k"]);
        let a = standard_signature(&s, "msg_1", 10, b"{}");
        assert!(a.starts_with("v1,") && a.len() == STANDARD_LEN, "{a}");
        assert_ne!(a, standard_signature(&s, "msg_2", 10, b"{}"));
        assert_ne!(a, standard_signature(&s, "msg_1", 11, b"{}"));
        assert_ne!(a, standard_signature(&s, "msg_1", 10, b"[]"));
    }

    #[test]
    fn every_secret_signs_newest_first() {
        let both = sign(&secrets(&["new-secret", "old-secret"]), "msg_x", 5, b"body");
        let new = sign(&secrets(&["new-secret"]), "msg_x", 5, b"body");
        let old = sign(&secrets(&["old-secret"]), "msg_x", 5, b"body");
        assert_eq!(both.decnet, format!("{},{}", new.decnet, old.decnet));
        assert_eq!(both.standard, format!("{} {}", new.standard, old.standard));
        assert_eq!(both.decnet.len(), 2 * DECNET_LEN + 1);
    }
}
