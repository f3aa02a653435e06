//! NATS subject patterns (`attacker.>`, `decky.*.state`).

use std::fmt;

pub const MAX_PATTERN_LEN: usize = 256;
pub const MAX_PATTERNS: usize = 32;

/// A valid NATS subject with wildcards: dot-separated non-empty tokens without
/// whitespace, `*` only as a whole token, `>` only as the whole last token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectPattern(String);

impl SubjectPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("pattern is empty".into());
        }
        if s.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "pattern is longer than {MAX_PATTERN_LEN} characters"
            ));
        }
        let tokens: Vec<&str> = s.split('.').collect();
        for (i, token) in tokens.iter().enumerate() {
            if token.is_empty() {
                return Err(format!("pattern {s:?} has an empty token"));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("pattern {s:?} contains whitespace"));
            }
            if token.contains('>') && (*token != ">" || i + 1 != tokens.len()) {
                return Err(format!(
                    "pattern {s:?}: '>' is allowed only as the whole last token"
                ));
            }
            if token.contains('*') && *token != "*" {
                return Err(format!(
                    "pattern {s:?}: '*' is allowed only as a whole token"
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NATS-internal namespace this pattern names, if any: `$`-prefixed subjects
    /// (`$SYS` server events, `$JS` JetStream's API and acks) and `_INBOX` (request
    /// replies, the bus's own among them). A subscription must not receive those.
    pub fn internal_namespace(&self) -> Option<&str> {
        let first = self.0.split('.').next().unwrap_or_default();
        (first.starts_with('$') || first == "_INBOX").then_some(first)
    }

    /// Whether it starts with a wildcard (`>`, `*.>`): it then also matches NATS's
    /// internal subjects, whatever the bus carries.
    pub fn starts_with_wildcard(&self) -> bool {
        matches!(self.0.split('.').next(), Some(">" | "*"))
    }

    /// Whether `subject` (a literal subject) matches this pattern.
    pub fn matches(&self, subject: &str) -> bool {
        let mut subject_tokens = subject.split('.');
        for token in self.0.split('.') {
            match (token, subject_tokens.next()) {
                (">", Some(_)) => return true,
                (_, None) => return false,
                ("*", Some(_)) => {}
                (t, Some(s)) if t == s => {}
                _ => return false,
            }
        }
        subject_tokens.next().is_none()
    }
}

/// The first of `patterns` that starts with a wildcard, for the warning it earns.
pub fn first_starting_with_wildcard(patterns: &[String]) -> Option<&str> {
    patterns
        .iter()
        .find(|p| SubjectPattern::parse(p).is_ok_and(|p| p.starts_with_wildcard()))
        .map(String::as_str)
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nats_wildcards() {
        for p in [
            "attacker.>",
            "decky.*.state",
            "system.log",
            ">",
            "*",
            "a.*.>",
        ] {
            assert!(SubjectPattern::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_bad_grammar() {
        for p in [
            "",
            "a..b",
            ".a",
            "a.",
            "a b",
            "a.>.b",
            "a>",
            "a.b*",
            "*a",
            "a.\tb",
            &"x".repeat(257),
        ] {
            assert!(SubjectPattern::parse(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn knows_the_internal_namespaces() {
        for (p, ns) in [
            ("$SYS.>", "$SYS"),
            ("$SYS.ACCOUNT.*.CONNECT", "$SYS"),
            ("$JS.API.>", "$JS"),
            ("_INBOX.>", "_INBOX"),
            ("_INBOX.abc.*", "_INBOX"),
        ] {
            let p = SubjectPattern::parse(p).unwrap();
            assert_eq!(p.internal_namespace(), Some(ns), "{p}");
        }
        for p in [
            "attacker.>",
            ">",
            "*.>",
            "SYS.>",
            "INBOX.>",
            "a.$SYS",
            "a._INBOX",
        ] {
            let p = SubjectPattern::parse(p).unwrap();
            assert_eq!(p.internal_namespace(), None, "{p}");
        }
        for (p, wild) in [(">", true), ("*.>", true), ("*.x", true), ("a.>", false)] {
            let p = SubjectPattern::parse(p).unwrap();
            assert_eq!(p.starts_with_wildcard(), wild, "{p}");
        }
    }

    #[test]
    fn matches_like_nats() {
        let p = SubjectPattern::parse("decky.*.state").unwrap();
        assert!(p.matches("decky.d1.state"));
        assert!(!p.matches("decky.d1.traffic"));
        assert!(!p.matches("decky.d1.state.x"));
        let p = SubjectPattern::parse("attacker.>").unwrap();
        assert!(p.matches("attacker.observed"));
        assert!(p.matches("attacker.session.started"));
        assert!(!p.matches("attacker"));
    }
}
