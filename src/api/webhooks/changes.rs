//! A PATCH as the columns it changes: nothing is written that did not change.

use chrono::{SubsecRound, Utc};
use entity::webhook_subscription::{ActiveModel, Model};
use sea_orm::ActiveValue::{Set, Unchanged};
use serde_json::json;

use super::options::Options;
use crate::secrets::SealedAccess;

/// The validated fields of a PATCH, each `None` when not given.
pub struct Changes {
    pub name: Option<String>,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub patterns: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// The delivery options after the PATCH, when it gave any.
    pub options: Option<Options>,
    /// The destination secret to store, sealed (`Some(None)` clears it).
    pub destination_secret: Option<Option<String>>,
    /// The receiver access columns, when what they hold changes.
    pub access: Option<SealedAccess>,
    /// The filter after the PATCH (`Some(None)`: removed), when it gave one.
    pub filter: Option<Option<String>>,
}

impl Changes {
    /// An update setting only the columns that differ from `row`, with a new
    /// `updated_at`; `None` when nothing differs.
    pub fn against(self, row: &Model) -> Option<ActiveModel> {
        let mut active = ActiveModel {
            uuid: Unchanged(row.uuid.clone()),
            ..Default::default()
        };
        let mut changed = false;
        if let Some(name) = self.name.filter(|n| *n != row.name) {
            active.name = Set(name);
            changed = true;
        }
        if let Some(url) = self.url.filter(|u| *u != row.url) {
            active.url = Set(url);
            changed = true;
        }
        if let Some(secret) = self.secret.filter(|s| *s != row.secret) {
            active.secret = Set(secret);
            changed = true;
        }
        if let Some(patterns) = self.patterns.filter(|p| *p != row.patterns()) {
            active.topic_patterns = Set(json!(patterns));
            changed = true;
        }
        match self.enabled {
            // Re-enabling is how an operator clears a tripped circuit.
            Some(true) if !row.enabled => {
                active.enabled = Set(true);
                active.auto_disabled_at = Set(None);
                active.consecutive_failures = Set(0);
                active.last_error = Set(None);
                changed = true;
            }
            Some(false) if row.enabled => {
                active.enabled = Set(false);
                changed = true;
            }
            _ => {}
        }
        if let Some(filter) = self.filter.filter(|f| *f != row.filter) {
            active.filter = Set(filter);
            changed = true;
        }
        if let Some(options) = self.options {
            changed |= set_options(&mut active, row, options);
        }
        if let Some(secret) = self.destination_secret {
            active.destination_secret = Set(secret);
            changed = true;
        }
        if let Some(access) = self.access {
            set_access(&mut active, access);
            changed = true;
        }
        changed.then(|| {
            active.updated_at = Set(Utc::now().trunc_subsecs(6));
            active
        })
    }
}

/// Set every receiver access column (a new row's, or a PATCH's that changes them).
pub fn set_access(active: &mut ActiveModel, access: SealedAccess) {
    active.headers = Set(access.headers);
    active.auth = Set(access.auth);
    active.tls_ca_pem = Set(access.tls_ca_pem);
    active.tls_client_cert_pem = Set(access.tls_client_cert_pem);
    active.tls_client_key_pem = Set(access.tls_client_key_pem);
}

/// Set each option column that differs from `row`; whether any did.
fn set_options(active: &mut ActiveModel, row: &Model, new: Options) -> bool {
    let mut changed = false;
    if new.ordered != row.ordered {
        active.ordered = Set(new.ordered);
        changed = true;
    }
    if new.batch_max != row.batch_max {
        active.batch_max = Set(new.batch_max);
        changed = true;
    }
    if new.batch_linger_ms != row.batch_linger_ms {
        active.batch_linger_ms = Set(new.batch_linger_ms);
        changed = true;
    }
    if new.rate_limit_per_sec != row.rate_limit_per_sec {
        active.rate_limit_per_sec = Set(new.rate_limit_per_sec);
        changed = true;
    }
    if new.shape != row.shape {
        active.shape = Set(new.shape);
        changed = true;
    }
    if new.template != row.template {
        active.template = Set(new.template);
        changed = true;
    }
    if new.destination != row.destination {
        active.destination = Set(new.destination);
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveValue::NotSet;

    fn row(enabled: bool) -> Model {
        let ts = Utc::now();
        Model {
            uuid: "u".into(),
            name: "n".into(),
            url: "https://1.1.1.1/hook".into(),
            secret: "s".repeat(16),
            topic_patterns: json!(["a.>"]),
            enabled,
            consecutive_failures: 5,
            last_success_at: None,
            last_failure_at: Some(ts),
            last_error: Some("HTTP 503".into()),
            auto_disabled_at: (!enabled).then_some(ts),
            created_at: ts,
            updated_at: ts,
            previous_secret: None,
            secret_rotated_at: None,
            previous_secret_expires_at: None,
            ordered: false,
            batch_max: None,
            batch_linger_ms: None,
            rate_limit_per_sec: None,
            shape: "raw".into(),
            template: None,
            destination: None,
            destination_secret: None,
            headers: None,
            auth: None,
            tls_ca_pem: None,
            tls_client_cert_pem: None,
            tls_client_key_pem: None,
            filter: None,
        }
    }

    fn none() -> Changes {
        Changes {
            name: None,
            url: None,
            secret: None,
            patterns: None,
            enabled: None,
            options: None,
            destination_secret: None,
            access: None,
            filter: None,
        }
    }

    #[test]
    fn equal_values_change_nothing() {
        let row = row(true);
        let same = Changes {
            name: Some("n".into()),
            url: Some(row.url.clone()),
            secret: Some(row.secret.clone()),
            patterns: Some(vec!["a.>".into()]),
            enabled: Some(true),
            options: Some(Options::of(&row)),
            destination_secret: None,
            access: None,
            filter: Some(None),
        };
        assert!(same.against(&row).is_none());
        assert!(none().against(&row).is_none());
    }

    #[test]
    fn only_changed_columns_are_set() {
        let active = Changes {
            name: Some("renamed".into()),
            ..none()
        }
        .against(&row(true))
        .expect("a change");
        assert_eq!(active.name, Set("renamed".into()));
        assert!(matches!(active.updated_at, Set(_)));
        assert_eq!(active.uuid, Unchanged("u".into()));
        assert_eq!(active.url, NotSet);
        assert_eq!(active.secret, NotSet);
        assert_eq!(active.topic_patterns, NotSet);
        assert_eq!(active.enabled, NotSet);
        assert_eq!(active.consecutive_failures, NotSet);
        assert_eq!(active.created_at, NotSet);
    }

    #[test]
    fn re_enabling_clears_the_trip_and_pausing_keeps_it() {
        let enable = Changes {
            enabled: Some(true),
            ..none()
        };
        let active = enable.against(&row(false)).expect("a change");
        assert_eq!(active.enabled, Set(true));
        assert_eq!(active.auto_disabled_at, Set(None));
        assert_eq!(active.consecutive_failures, Set(0));
        assert_eq!(active.last_error, Set(None));
        assert_eq!(active.last_failure_at, NotSet);

        let pause = Changes {
            enabled: Some(false),
            ..none()
        };
        let active = pause.against(&row(true)).expect("a change");
        assert_eq!(active.enabled, Set(false));
        assert_eq!(active.auto_disabled_at, NotSet);
        assert_eq!(active.consecutive_failures, NotSet);
    }

    #[test]
    fn only_changed_options_are_set() {
        let row = row(true);
        let mut options = Options::of(&row);
        options.ordered = true;
        options.rate_limit_per_sec = Some(2.5);
        let active = Changes {
            options: Some(options),
            ..none()
        }
        .against(&row)
        .expect("a change");
        assert_eq!(active.ordered, Set(true));
        assert_eq!(active.rate_limit_per_sec, Set(Some(2.5)));
        assert_eq!(active.batch_max, NotSet);
        assert_eq!(active.shape, NotSet);
        assert_eq!(active.template, NotSet);
        assert_eq!(active.name, NotSet);
    }
}
