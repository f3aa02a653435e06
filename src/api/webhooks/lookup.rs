//! The subscription a request path names.

use entity::webhook_subscription::Model;

use crate::{api::state::AppState, db::subscriptions, error::AppError};

/// The subscription a path's `{uuid}` names; 404 when there is none.
pub(crate) async fn find(state: &AppState, raw_uuid: &str) -> Result<Model, AppError> {
    let uuid = parse_uuid(raw_uuid)?;
    subscriptions::get(&state.db, &uuid)
        .await?
        .ok_or_else(AppError::not_found)
}

/// Subscriptions are keyed by hyphenated lowercase UUIDs; anything else names none.
pub(crate) fn parse_uuid(raw: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| AppError::not_found())
}
