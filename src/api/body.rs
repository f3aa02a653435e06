//! JSON request bodies: at most 64 KiB, and every decoding error names the field.
//!
//! Handlers read the body themselves, after the auth extractor has run, so an
//! unauthenticated or unauthorised caller learns nothing from body validation.

use actix_web::web;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::AppError;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Read the whole body (413 past the limit) and decode it (422 naming the field).
pub async fn read_json<T: DeserializeOwned>(payload: web::Payload) -> Result<T, AppError> {
    decode(&read_bytes(payload).await?)
}

/// Like [`read_json`], but an empty body means every field absent.
pub async fn read_json_or_default<T: DeserializeOwned + Default>(
    payload: web::Payload,
) -> Result<T, AppError> {
    let bytes = read_bytes(payload).await?;
    // An empty body and `null` both mean "nothing given" (the document allows either).
    if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    decode(&bytes)
}

async fn read_bytes(mut payload: web::Payload) -> Result<web::BytesMut, AppError> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if super::connections::body_timed_out(&e) {
                AppError::RequestTimeout(format!("Request body {e}"))
            } else {
                AppError::Unprocessable(format!("body: could not be read: {e}"))
            }
        })?;
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge(format!(
                "Request body is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Decode in two steps: syntax first (so a broken body is reported as such), then
/// the shape, tracking the path to the offending field.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::Unprocessable(format!("body: malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(AppError::Unprocessable(
            "body: expected a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        AppError::Unprocessable(match missing_field(&message) {
            Some(field) => format!("{field}: field required"),
            None if path == "." => format!("body: {message}"),
            None => format!("{path}: {message}"),
        })
    })
}

/// The name in serde's "missing field `name`".
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn detail(body: &str) -> String {
        decode::<Probe>(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert!(detail(r#"{"name":"x","bogus":1}"#).contains("bogus"));
        assert!(detail(r#"{"name":5}"#).starts_with("name: invalid type"));
        assert!(detail(r#"{"name":"x","tags":["a",3]}"#).starts_with("tags[1]: "));
        assert_eq!(detail("{}"), "name: field required");
        assert!(detail(r#"{"name":"#).starts_with("body: malformed JSON"));
        assert!(detail("").starts_with("body: malformed JSON"));
        assert_eq!(detail("[1]"), "body: expected a JSON object");
    }
}
