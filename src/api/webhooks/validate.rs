//! Field rules of WebhookCreate/WebhookUpdate beyond their JSON shape.

use base64::Engine as _;
use rand::RngCore;

use crate::{
    domain::{
        pattern::MAX_PATTERNS, simple_event::merge_patterns, text, SimpleEvent, SubjectPattern,
        WebhookUrl,
    },
    error::AppError,
};

pub const MAX_NAME_CHARS: usize = 64;
pub const MIN_SECRET_CHARS: usize = 16;
pub const MAX_SECRET_CHARS: usize = 256;
/// Random bytes in a generated secret.
const GENERATED_SECRET_BYTES: usize = 32;

pub const NO_PATTERNS_ON_CREATE: &str =
    "Provide at least one simple_events entry or topic_patterns pattern.";
pub const NO_PATTERNS_ON_PATCH: &str = "Cannot clear all patterns; disable the webhook instead.";

fn invalid(field: &str, problem: impl std::fmt::Display) -> AppError {
    AppError::Unprocessable(format!("{field}: {problem}"))
}

/// 1–64 characters, not blank, no control or invisible formatting characters.
pub fn name(name: String) -> Result<String, AppError> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters"));
    }
    if let Some(c) = text::format_char(&name) {
        return Err(invalid(
            "name",
            format!(
                "must not contain invisible formatting characters ({})",
                text::code_point(c)
            ),
        ));
    }
    Ok(name)
}

/// A PagerDuty integration key: 32 letters and digits.
pub fn routing_key(key: String) -> Result<String, AppError> {
    if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "routing_key",
            "must be the 32 letters and digits of a PagerDuty integration key",
        ));
    }
    Ok(key)
}

/// 16–256 characters.
pub fn secret(secret: String) -> Result<String, AppError> {
    let chars = secret.chars().count();
    if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
        return Err(invalid(
            "secret",
            format!("must be {MIN_SECRET_CHARS}–{MAX_SECRET_CHARS} characters"),
        ));
    }
    // Stored values with this prefix are read as encrypted, never as a plaintext secret.
    if crate::secrets::is_encrypted(&secret) {
        return Err(invalid("secret", "must not start with \"enc:\""));
    }
    Ok(secret)
}

/// 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Simple expansions then raw patterns, each raw one checked against the NATS grammar
/// and kept out of NATS's internal namespaces; an empty result is a 400 with `when_empty`.
pub fn patterns(
    simple: &[SimpleEvent],
    raw: &[String],
    when_empty: &str,
) -> Result<Vec<String>, AppError> {
    if raw.len() > MAX_PATTERNS {
        return Err(too_many());
    }
    for (i, pattern) in raw.iter().enumerate() {
        let field = format!("topic_patterns[{i}]");
        let parsed = SubjectPattern::parse(pattern).map_err(|e| invalid(&field, e))?;
        if let Some(namespace) = parsed.internal_namespace() {
            return Err(invalid(
                &field,
                format!("{namespace} subjects are NATS internals, not DECNET events"),
            ));
        }
    }
    let merged = merge_patterns(simple, raw);
    if merged.is_empty() {
        return Err(AppError::BadRequest(when_empty.to_owned()));
    }
    if merged.len() > MAX_PATTERNS {
        return Err(too_many());
    }
    Ok(merged)
}

fn too_many() -> AppError {
    invalid(
        "topic_patterns",
        format!("at most {MAX_PATTERNS} patterns are allowed"),
    )
}

/// A filter that compiles (blank: none); a 422 names where it does not.
pub fn filter(source: Option<String>) -> Result<Option<String>, AppError> {
    let Some(source) = source.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    crate::filter::Filter::compile(&source).map_err(|e| invalid("filter", e))?;
    Ok(Some(source))
}

/// Parse and pass the SSRF guard: the host must resolve, and to public addresses
/// only unless private destinations are allowed.
pub async fn url(url: &str, allow_private: bool) -> Result<WebhookUrl, AppError> {
    let parsed = WebhookUrl::parse(url.trim()).map_err(|e| invalid("url", e))?;
    parsed
        .resolve_checked(allow_private)
        .await
        .map_err(|e| invalid("url", e))?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_and_url_safe() {
        let s = generate_secret();
        assert_eq!(s.len(), 43);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn names_and_secrets_have_bounds() {
        assert!(name("a".into()).is_ok());
        assert!(name("é".repeat(64)).is_ok());
        assert!(name("é".repeat(65)).is_err());
        assert!(name("  ".into()).is_err());
        assert!(name("a\nb".into()).is_err());
        assert!(
            name("admin\u{202E}gnp.exe".into()).is_err_and(|e| e.to_string().contains("U+202E"))
        );
        assert!(name("siem\u{200B}".into()).is_err());
        assert!(secret("x".repeat(15)).is_err());
        assert!(secret(format!("enc:v1:{}", "x".repeat(20))).is_err());
        assert!(secret(format!("x-enc:{}", "x".repeat(20))).is_ok());
        assert!(secret("x".repeat(16)).is_ok());
        assert!(secret("x".repeat(257)).is_err());
    }

    #[test]
    fn patterns_expand_check_and_refuse_empty() {
        let merged = patterns(&[SimpleEvent::SystemStatus], &["a.*".into()], "empty").unwrap();
        assert_eq!(merged, ["system.>", "a.*"]);
        assert!(matches!(
            patterns(&[], &[], "empty"),
            Err(AppError::BadRequest(m)) if m == "empty"
        ));
        assert!(matches!(
            patterns(&[], &["a..b".into()], "empty"),
            Err(AppError::Unprocessable(m)) if m.starts_with("topic_patterns[0]: ")
        ));
        assert!(matches!(
            patterns(&[], &["a.>".into(), "$SYS.>".into()], "empty"),
            Err(AppError::Unprocessable(m)) if m.starts_with("topic_patterns[1]: $SYS ")
        ));
        assert!(patterns(&[], &[">".into()], "empty").is_ok());
        let many: Vec<String> = (0..33).map(|i| format!("p.{i}")).collect();
        assert!(matches!(
            patterns(&[], &many, "empty"),
            Err(AppError::Unprocessable(_))
        ));
    }
}
