//! The retry policy: which answers are retried, and after how long.

use std::{
    ops::RangeInclusive,
    time::{Duration, SystemTime},
};

use rand::Rng as _;

/// A receiver may ask for at most this long a pause.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// Scheduled delays are scaled by a random factor in this range, so receivers that
/// failed together are not retried in lockstep.
pub const JITTER: RangeInclusive<f64> = 0.8..=1.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Retryable,
    /// Stops the delivery at once (4xx other than 429, 3xx, 1xx).
    Final,
}

pub fn classify(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        429 | 500..=599 => StatusClass::Retryable,
        _ => StatusClass::Final,
    }
}

/// Whether a `Retry-After` on this status replaces the scheduled delay.
pub fn honours_retry_after(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// `Retry-After` as delta-seconds or an HTTP-date, capped at [`RETRY_AFTER_CAP`];
/// a date in the past means now. `None` when the value is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits, so a parse failure is an overflow: a very long wait.
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

/// `delay × factor`, the factor clamped into [`JITTER`].
pub fn jittered(delay: Duration, factor: f64) -> Duration {
    let factor = if factor.is_finite() {
        factor.clamp(*JITTER.start(), *JITTER.end())
    } else {
        1.0
    };
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(delay)
}

pub fn random_factor() -> f64 {
    rand::thread_rng().gen_range(JITTER)
}

/// The pause before the next attempt: the receiver's `Retry-After` if it gave one,
/// else the scheduled delay with jitter.
pub fn next_delay(scheduled: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| jittered(scheduled, random_factor()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        // Sun, 06 Nov 1994 08:49:37 GMT
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn classifies_statuses() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify(s), StatusClass::Success, "{s}");
        }
        for s in [429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(s), StatusClass::Retryable, "{s}");
        }
        for s in [100, 301, 302, 304, 400, 401, 404, 410, 413, 600] {
            assert_eq!(classify(s), StatusClass::Final, "{s}");
        }
    }

    #[test]
    fn retry_after_delta_seconds() {
        assert_eq!(parse_retry_after("1", now()), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("61", now()), Some(RETRY_AFTER_CAP));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(RETRY_AFTER_CAP)
        );
        for bad in ["", "-1", "1.5", "soon", "+3"] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_date() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now()),
            Some(Duration::from_secs(10))
        );
        // The obsolete RFC 850 and asctime forms are still valid HTTP-dates.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:57 GMT", now()),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:50:07 1994", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 09:49:37 GMT", now()),
            Some(RETRY_AFTER_CAP)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", now()),
            None
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let delay = Duration::from_secs(2);
        assert_eq!(jittered(delay, 0.8), Duration::from_millis(1600));
        assert_eq!(jittered(delay, 1.2), Duration::from_millis(2400));
        assert_eq!(jittered(delay, 0.1), Duration::from_millis(1600));
        assert_eq!(jittered(delay, 9.0), Duration::from_millis(2400));
        assert_eq!(jittered(delay, f64::NAN), delay);
        for _ in 0..1000 {
            let f = random_factor();
            assert!(JITTER.contains(&f), "{f}");
            let d = next_delay(delay, None);
            assert!(
                (Duration::from_millis(1600)..=Duration::from_millis(2400)).contains(&d),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_replaces_the_schedule_exactly() {
        assert_eq!(
            next_delay(Duration::from_secs(4), Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
    }
}
