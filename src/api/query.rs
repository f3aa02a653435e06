//! Query strings, held to the rules of request bodies: only known parameters, each at
//! most once, and every decoding error a 422 naming the parameter.
//!
//! Handlers parse the query themselves, after the auth extractor has run, so an
//! unauthenticated or unauthorised caller learns nothing from validation.

use std::{collections::HashMap, ops::RangeInclusive};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use utoipa::IntoParams;

use crate::{db::truncate_chars, error::AppError};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;
/// Both databases bind offsets as signed 64-bit integers.
const MAX_OFFSET: u64 = i64::MAX as u64;
/// An unknown parameter name is echoed in the error, at most this long.
const MAX_ECHOED_NAME: usize = 64;

/// The decoded parameters of one query string.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Decode `raw` (`a=1&b=2`, percent-encoded); a name outside `known`, or given
    /// twice, is a 422.
    pub fn parse(raw: &str, known: &[&str]) -> Result<Self, AppError> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if !known.contains(&name.as_ref()) {
                let name = truncate_chars(&name, MAX_ECHOED_NAME);
                return Err(invalid(&name, "unknown query parameter"));
            }
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(invalid(&name, "given more than once"));
            }
        }
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A whole number within `range`; `default` when absent.
    pub fn number(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, AppError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                invalid(
                    name,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// An ISO-8601 timestamp; `None` when absent.
    pub fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>, AppError> {
        self.get(name)
            .map(|raw| {
                parse_timestamp(raw).ok_or_else(|| {
                    invalid(
                        name,
                        "must be an ISO-8601 timestamp, e.g. 2026-04-24T10:00:00Z",
                    )
                })
            })
            .transpose()
    }
}

/// A 422 naming the parameter.
pub fn invalid(name: &str, problem: impl std::fmt::Display) -> AppError {
    AppError::Unprocessable(format!("{name}: {problem}"))
}

/// RFC 3339, or without an offset (then UTC, like every timestamp of the API), or a
/// bare date (midnight UTC).
fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    let rfc3339 = |s: &str| DateTime::parse_from_rfc3339(s).ok();
    // A `+` left unencoded in a URL arrives as a space: `…T10:00:00 00:00`.
    if let Some(ts) = rfc3339(raw).or_else(|| rfc3339(&raw.replace(' ', "+"))) {
        return Some(ts.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|ts| ts.and_utc())
}

/// Which slice of a listing to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items to answer.
    #[param(required = false, default = 50, minimum = 1, maximum = 500)]
    pub limit: u64,
    /// Items to skip.
    #[param(required = false, default = 0, minimum = 0)]
    pub offset: u64,
}

impl Page {
    /// The parameter names `from_query` reads.
    pub const PARAMS: [&'static str; 2] = ["limit", "offset"];

    pub fn from_query(query: &Query) -> Result<Self, AppError> {
        Ok(Self {
            limit: query.number("limit", 1..=MAX_LIMIT, DEFAULT_LIMIT)?,
            offset: query.number("offset", 0..=MAX_OFFSET, 0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(raw: &str, known: &[&str]) -> String {
        Query::parse(raw, known)
            .and_then(|q| Page::from_query(&q).map(drop))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn pages_default_and_are_bounded() {
        let page = |raw| Page::from_query(&Query::parse(raw, &Page::PARAMS).unwrap());
        assert_eq!(
            page("").unwrap(),
            Page {
                limit: 50,
                offset: 0
            }
        );
        assert_eq!(
            page("limit=500&offset=7").unwrap(),
            Page {
                limit: 500,
                offset: 7
            }
        );
        for bad in ["limit=0", "limit=501", "limit=-1", "limit=", "limit=x"] {
            assert!(page(bad)
                .unwrap_err()
                .to_string()
                .starts_with("limit: must be a whole number from 1 to 500"));
        }
        assert!(page("offset=9223372036854775808")
            .unwrap_err()
            .to_string()
            .starts_with("offset: "));
    }

    #[test]
    fn unknown_and_repeated_names_are_refused() {
        assert_eq!(
            detail("limit=1&bogus=2", &Page::PARAMS),
            "bogus: unknown query parameter"
        );
        assert_eq!(
            detail("limit=1&limit=2", &Page::PARAMS),
            "limit: given more than once"
        );
    }

    #[test]
    fn timestamps_are_iso_8601() {
        let at = |raw: &str| {
            let query = format!(
                "since={}",
                url::form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>()
            );
            Query::parse(&query, &["since"]).unwrap().timestamp("since")
        };
        let want = DateTime::parse_from_rfc3339("2026-04-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for raw in [
            "2026-04-24T10:00:00Z",
            "2026-04-24T10:00:00+00:00",
            "2026-04-24T12:00:00+02:00",
            "2026-04-24T10:00:00",
            "2026-04-24T10:00:00 00:00",
        ] {
            assert_eq!(at(raw).unwrap(), Some(want), "{raw}");
        }
        assert_eq!(
            at("2026-04-24").unwrap(),
            Some(want - chrono::Duration::hours(10))
        );
        assert!(at("yesterday")
            .unwrap_err()
            .to_string()
            .starts_with("since: must be an ISO-8601 timestamp"));
        assert_eq!(Query::default().timestamp("since").unwrap(), None);
    }
}
