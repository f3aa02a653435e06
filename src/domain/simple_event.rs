//! The three preset event groups of the API and the patterns they stand for.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SimpleEvent {
    AttackerDetail,
    DeckyStatus,
    SystemStatus,
}

impl SimpleEvent {
    pub fn patterns(self) -> &'static [&'static str] {
        match self {
            Self::AttackerDetail => &["attacker.>"],
            Self::DeckyStatus => &["decky.*.state", "decky.*.traffic"],
            Self::SystemStatus => &["system.>"],
        }
    }
}

/// Simple expansions first, then raw patterns; duplicates removed, order kept.
pub fn merge_patterns(simple: &[SimpleEvent], raw: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let expanded = simple
        .iter()
        .flat_map(|s| s.patterns().iter().map(|p| p.to_string()));
    for p in expanded.chain(raw.iter().cloned()) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_then_merges_without_duplicates() {
        let merged = merge_patterns(
            &[SimpleEvent::DeckyStatus, SimpleEvent::AttackerDetail],
            &["attacker.>".into(), "custom.x".into(), "custom.x".into()],
        );
        assert_eq!(
            merged,
            ["decky.*.state", "decky.*.traffic", "attacker.>", "custom.x"]
        );
    }
}
