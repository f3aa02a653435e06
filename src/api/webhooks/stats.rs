//! `GET /api/v1/webhooks/{uuid}/stats` and `GET /api/v1/webhooks/stats`: deliveries,
//! failures, dead letters and latency percentiles per interval, aggregated by the
//! database (`db::stats`), for one subscription or for all.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use super::lookup::find;
use crate::{
    api::{
        auth::Admin,
        query::{invalid, Query},
        state::AppState,
    },
    db::stats::{self, AttemptGroup, Window},
    domain::event::iso,
    error::{AppError, ErrorBody},
};

/// The shortest step: finer intervals would mostly be empty.
pub const MIN_STEP_SECS: i64 = 10;
/// The longest window: a month, well past the delivery log's usual retention.
pub const MAX_WINDOW_SECS: i64 = 31 * 86_400;
/// Buckets one answer holds at most, so its size and cost stay bounded.
pub const MAX_BUCKETS: i64 = 1440;

/// Which span and intervals to aggregate.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// How far back, ending with the interval that holds now: a whole number and a
    /// unit (`s`, `m`, `h`, `d`), e.g. `1h`, `1d`; at most `31d`.
    #[param(required = false, default = "1h", pattern = "^[0-9]{1,7}[smhd]$")]
    pub window: String,
    /// The length of one interval, e.g. `1m`; at least `10s`, dividing the window
    /// into at most 1440 intervals.
    #[param(required = false, default = "1m", pattern = "^[0-9]{1,7}[smhd]$")]
    pub step: String,
}

/// The window and step a query asks for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub window: String,
    pub step: String,
    pub window_secs: i64,
    pub step_secs: i64,
}

impl Span {
    pub const PARAMS: [&'static str; 2] = ["window", "step"];

    pub fn from_query(query: &Query) -> Result<Self, AppError> {
        let window = query.get("window").unwrap_or("1h");
        let step = query.get("step").unwrap_or("1m");
        let window_secs = seconds(window).ok_or_else(|| {
            invalid(
                "window",
                "must be a whole number and a unit (s, m, h, d), e.g. 1h",
            )
        })?;
        let step_secs = seconds(step).ok_or_else(|| {
            invalid(
                "step",
                "must be a whole number and a unit (s, m, h, d), e.g. 1m",
            )
        })?;
        if window_secs > MAX_WINDOW_SECS {
            return Err(invalid("window", "must be at most 31d"));
        }
        if step_secs < MIN_STEP_SECS {
            return Err(invalid("step", "must be at least 10s"));
        }
        if step_secs > window_secs {
            return Err(invalid("step", "must not be longer than the window"));
        }
        if window_secs % step_secs != 0 {
            return Err(invalid("step", "must divide the window evenly"));
        }
        let buckets = window_secs / step_secs;
        if buckets > MAX_BUCKETS {
            return Err(invalid(
                "step",
                format!("cuts the window into {buckets} intervals; at most {MAX_BUCKETS}"),
            ));
        }
        Ok(Self {
            window: window.to_owned(),
            step: step.to_owned(),
            window_secs,
            step_secs,
        })
    }

    fn window_ending_now(&self) -> Window {
        Window::ending_at(
            Utc::now(),
            self.step_secs,
            self.window_secs / self.step_secs,
        )
    }
}

/// `1h` → 3600; `None` for anything but digits and one unit, or zero.
fn seconds(raw: &str) -> Option<i64> {
    let unit = raw.chars().last()?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    Some(n.checked_mul(per)?).filter(|s| *s > 0)
}

/// One interval: what happened in it.
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct StatsBucket {
    /// The start of the interval (it ends where the next starts).
    #[serde(serialize_with = "iso_ts")]
    #[schema(value_type = String, format = DateTime)]
    pub start: DateTime<Utc>,
    /// Attempts the receiver answered with 2xx.
    pub delivered: u64,
    /// Attempts that failed (each retry counts).
    pub failed: u64,
    /// Deliveries written to the dead-letter store (still stored: a replayed one is gone).
    pub dead_lettered: u64,
    /// Median latency of the attempts, in milliseconds; null without attempts.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the attempts, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// The window as a whole.
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct StatsTotals {
    pub delivered: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Deliveries per interval over a window that ends with the interval holding now.
///
/// Counts come from the delivery log (every HTTP attempt) and the dead-letter store.
/// Percentiles are read from latency classes counted by the database: exact where a
/// class holds one value, else within the class (classes are about ×1.5 apart).
#[derive(Serialize, ToSchema, Debug)]
pub struct Stats {
    /// The subscription, or null for all of them.
    pub subscription: Option<String>,
    /// As asked, e.g. `1h`.
    pub window: String,
    pub step: String,
    pub window_secs: i64,
    pub step_secs: i64,
    #[serde(serialize_with = "iso_ts")]
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "iso_ts")]
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    pub totals: StatsTotals,
    /// Oldest first, one per step, empty intervals included.
    pub buckets: Vec<StatsBucket>,
}

fn iso_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(*ts))
}

/// Aggregate one subscription (`Some`) or all of them over `span`.
pub async fn aggregate(
    state: &AppState,
    subscription: Option<&str>,
    span: &Span,
) -> Result<Stats, AppError> {
    let window = span.window_ending_now();
    let attempts = stats::attempt_groups(&state.db, subscription, window).await?;
    let dead = stats::dead_letter_groups(&state.db, subscription, window).await?;
    let size = usize::try_from(window.buckets).unwrap_or(0);
    let mut per_bucket: Vec<Vec<AttemptGroup>> = vec![Vec::new(); size];
    let mut dead_per_bucket = vec![0u64; size];
    for g in &attempts {
        if let Some(groups) = usize::try_from(g.bucket)
            .ok()
            .and_then(|i| per_bucket.get_mut(i))
        {
            groups.push(*g);
        }
    }
    for d in &dead {
        if let Some(n) = usize::try_from(d.bucket)
            .ok()
            .and_then(|i| dead_per_bucket.get_mut(i))
        {
            *n += d.count;
        }
    }
    let count = |groups: &[AttemptGroup], ok: bool| -> u64 {
        groups.iter().filter(|g| g.ok == ok).map(|g| g.count).sum()
    };
    let buckets: Vec<StatsBucket> = per_bucket
        .iter()
        .zip(&dead_per_bucket)
        .enumerate()
        .map(|(i, (groups, dead))| StatsBucket {
            start: window.bucket_start(i as i64),
            delivered: count(groups, true),
            failed: count(groups, false),
            dead_lettered: *dead,
            p50_ms: stats::percentile(groups, 0.5),
            p99_ms: stats::percentile(groups, 0.99),
        })
        .collect();
    let totals = StatsTotals {
        delivered: buckets.iter().map(|b| b.delivered).sum(),
        failed: buckets.iter().map(|b| b.failed).sum(),
        dead_lettered: buckets.iter().map(|b| b.dead_lettered).sum(),
        p50_ms: stats::percentile(&attempts, 0.5),
        p99_ms: stats::percentile(&attempts, 0.99),
    };
    Ok(Stats {
        subscription: subscription.map(str::to_owned),
        window: span.window.clone(),
        step: span.step.clone(),
        window_secs: span.window_secs,
        step_secs: span.step_secs,
        from: window.from,
        to: window.to(),
        totals,
        buckets,
    })
}

/// One subscription's deliveries, failures, dead letters and latency per interval.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{uuid}/stats",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("uuid" = String, Path, description = "Subscription UUID"), StatsParams),
    responses(
        (status = 200, description = "Aggregates per interval", body = Stats),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 422, description = "Invalid window or step", body = ErrorBody),
    )
)]
pub async fn subscription_stats(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    answer_one(&state, &path, &req).await
}

/// Every subscription's deliveries, failures, dead letters and latency together, per
/// interval (the page header's recent rate).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/stats",
    tag = "webhooks",
    security(("bearer" = [])),
    params(StatsParams),
    responses(
        (status = 200, description = "Aggregates per interval", body = Stats),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Invalid window or step", body = ErrorBody),
    )
)]
pub async fn all_stats(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    answer_all(&state, &req).await
}

/// The answer of a stats route of one subscription, whoever may ask for it.
pub(crate) async fn answer_one(
    state: &AppState,
    raw_uuid: &str,
    req: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let span = Span::from_query(&Query::parse(req.query_string(), &Span::PARAMS)?)?;
    let row = find(state, raw_uuid).await?;
    Ok(HttpResponse::Ok().json(aggregate(state, Some(&row.uuid), &span).await?))
}

/// The answer of a stats route of all subscriptions, whoever may ask for it.
pub(crate) async fn answer_all(
    state: &AppState,
    req: &HttpRequest,
) -> Result<HttpResponse, AppError> {
    let span = Span::from_query(&Query::parse(req.query_string(), &Span::PARAMS)?)?;
    Ok(HttpResponse::Ok().json(aggregate(state, None, &span).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(raw: &str) -> Result<Span, String> {
        Query::parse(raw, &Span::PARAMS)
            .and_then(|q| Span::from_query(&q))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn windows_and_steps_are_checked() {
        let s = span("").unwrap();
        assert_eq!((s.window_secs, s.step_secs), (3600, 60));
        let s = span("window=1d&step=15m").unwrap();
        assert_eq!((s.window_secs, s.step_secs), (86_400, 900));
        assert_eq!(span("window=7d&step=10m").unwrap().window_secs, 604_800);
        for (raw, start) in [
            ("window=1x", "window: must be a whole number"),
            ("window=h", "window: must be a whole number"),
            ("window=-1h", "window: must be a whole number"),
            ("window=0h", "window: must be a whole number"),
            ("window=1.5h", "window: must be a whole number"),
            ("window=99999999d", "window: must be a whole number"),
            ("window=32d&step=1d", "window: must be at most 31d"),
            ("step=5s", "step: must be at least 10s"),
            (
                "window=1h&step=2h",
                "step: must not be longer than the window",
            ),
            ("window=1h&step=7m", "step: must divide the window evenly"),
            (
                "window=1d&step=10s",
                "step: cuts the window into 8640 intervals",
            ),
            ("window=1h&window=2h", "window: given more than once"),
            ("bogus=1", "bogus: unknown query parameter"),
        ] {
            let e = span(raw).unwrap_err();
            assert!(e.starts_with(start), "{raw}: {e}");
        }
    }
}
