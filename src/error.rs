//! Errors shared by the commands and the API.

use sea_orm::DbErr;

/// A database error as one line that never carries a connection string or password.
pub fn redact_db_error(e: &DbErr) -> String {
    let text = e.to_string();
    let text = text.lines().next().unwrap_or_default();
    // Connection errors may echo the URL; cut anything that looks like credentials.
    text.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                crate::config::redact_url(w)
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
