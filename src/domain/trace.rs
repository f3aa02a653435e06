//! W3C trace context (`traceparent`, `tracestate`) from a bus message's headers,
//! passed on to receivers so a trace runs from DECNET's master to the SIEM.

/// A well-formed trace context; anything malformed is dropped, never forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// `tracestate` is at most 32 list members; 512 characters is what the W3C
/// recommendation asks a sender to keep.
const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    /// The context of a message's headers: `traceparent` must be
    /// `<version>-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (lowercase,
    /// ids not all zero, version not `ff`; version `00` has nothing after the
    /// flags); `tracestate` is kept when it is printable ASCII of at most 512
    /// characters, and only beside a valid `traceparent`.
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent?.trim();
        if !valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
            .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .map(str::to_owned);
        Some(Self {
            traceparent: traceparent.to_owned(),
            tracestate,
        })
    }
}

fn valid_traceparent(s: &str) -> bool {
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    let mut parts = s.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let rest = parts.next();
    hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2)
        && (version != "00" || rest.is_none())
        && s.len() <= 256
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept_with_its_state() {
        let t = TraceContext::from_headers(Some(GOOD), Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(t.traceparent, GOOD);
        assert_eq!(t.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn malformed_contexts_are_dropped() {
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Evil: 1",
        ] {
            assert_eq!(TraceContext::from_headers(Some(bad), None), None, "{bad:?}");
        }
        assert_eq!(TraceContext::from_headers(None, Some("a=b")), None);
        let t = TraceContext::from_headers(Some(GOOD), Some("a=b\nc")).unwrap();
        assert_eq!(
            t.tracestate, None,
            "a state with a control character is dropped"
        );
    }
}
