//! Telling the workers that subscriptions changed.

use serde_json::json;

use crate::{api::state::AppState, bus};

/// Tell the workers to reload; a bus failure is logged by the bus and never fails
/// the request.
pub(super) async fn signal_changed(state: &AppState) {
    state
        .bus
        .publish_json(bus::SUBSCRIPTIONS_CHANGED, &json!({}))
        .await;
}
