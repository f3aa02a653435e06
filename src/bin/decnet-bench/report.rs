//! What a run is and what it reports: the scenarios and sizes, and one JSON line per
//! scenario with its checks (counts that must hold) and targets (figures to reach).

use std::{fmt, str::FromStr, time::Duration};

use serde_json::{Map, Value};

/// One benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Raw,
    Throughput,
    Fanout,
    Filters,
    Latency,
    Isolation,
    Scale,
    Durable,
    Ratelimit,
    Templates,
    Cluster,
    Stats,
    Burst,
}

impl Scenario {
    pub const ALL: [Scenario; 13] = [
        Scenario::Raw,
        Scenario::Throughput,
        Scenario::Fanout,
        Scenario::Filters,
        Scenario::Latency,
        Scenario::Isolation,
        Scenario::Scale,
        Scenario::Durable,
        Scenario::Ratelimit,
        Scenario::Templates,
        Scenario::Cluster,
        Scenario::Stats,
        Scenario::Burst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Raw => "raw",
            Scenario::Throughput => "throughput",
            Scenario::Fanout => "fanout",
            Scenario::Filters => "filters",
            Scenario::Latency => "latency",
            Scenario::Isolation => "isolation",
            Scenario::Scale => "scale",
            Scenario::Durable => "durable",
            Scenario::Ratelimit => "ratelimit",
            Scenario::Templates => "templates",
            Scenario::Cluster => "cluster",
            Scenario::Stats => "stats",
            Scenario::Burst => "burst",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| format!("unknown scenario {s:?}"))
    }
}

/// `Full` is the benchmark; `Small` runs every scenario tiny (the CI smoke test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Small,
    Full,
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(Size::Small),
            "full" => Ok(Size::Full),
            other => Err(format!("unknown size {other:?} (small or full)")),
        }
    }
}

/// A count the scenario promises, and what it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub expected: u64,
    pub actual: u64,
}

impl Check {
    pub fn new(what: impl Into<String>, expected: u64, actual: u64) -> Self {
        Self {
            what: what.into(),
            expected,
            actual,
        }
    }

    pub fn passed(&self) -> bool {
        self.expected == self.actual
    }
}

/// A figure the design aims at, and what it measured. A timing, not a count: the
/// line reports it (`targets_ok`) but `counts_ok` and the smoke test ignore it, since
/// a shared machine can miss it without anything being wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub what: String,
    pub low: f64,
    pub high: f64,
    pub actual: f64,
}

impl Target {
    pub fn met(&self) -> bool {
        (self.low..=self.high).contains(&self.actual)
    }
}

/// What one scenario measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: Scenario,
    /// Every count that must hold for the figures to be honest.
    pub checks: Vec<Check>,
    /// Timing targets, reported apart from the counts.
    pub targets: Vec<Target>,
    /// The JSON line's fields, in insertion order of the scenario.
    pub fields: Map<String, Value>,
}

impl Report {
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            checks: Vec::new(),
            targets: Vec::new(),
            fields: Map::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    pub fn check(&mut self, what: impl Into<String>, expected: u64, actual: u64) {
        self.checks.push(Check::new(what, expected, actual));
    }

    /// `actual` should lie within `low..=high`.
    pub fn target(&mut self, what: impl Into<String>, low: f64, high: f64, actual: f64) {
        self.targets.push(Target {
            what: what.into(),
            low,
            high,
            actual,
        });
    }

    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed())
    }

    pub fn missed_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().filter(|t| !t.met())
    }

    /// The scenario's line: its name, the figures, whether every check held and, when
    /// it has targets, whether they were met.
    pub fn json(&self) -> Value {
        let mut line = Map::new();
        line.insert("scenario".into(), self.scenario.name().into());
        line.extend(self.fields.clone());
        let failed: Vec<Value> = self
            .failed_checks()
            .map(
                |c| serde_json::json!({"what": c.what, "expected": c.expected, "actual": c.actual}),
            )
            .collect();
        line.insert("counts_ok".into(), failed.is_empty().into());
        if !failed.is_empty() {
            line.insert("failed_checks".into(), failed.into());
        }
        if !self.targets.is_empty() {
            let missed: Vec<Value> = self
                .missed_targets()
                .map(|t| {
                    serde_json::json!({
                        "what": t.what,
                        "low": t.low,
                        "high": t.high,
                        "actual": t.actual,
                    })
                })
                .collect();
            line.insert("targets_ok".into(), missed.is_empty().into());
            if !missed.is_empty() {
                line.insert("missed_targets".into(), missed.into());
            }
        }
        Value::Object(line)
    }
}

/// Why a scenario could not run (its setup failed); a bad figure is not an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

impl BenchError {
    pub fn setup(what: &str, e: impl fmt::Display) -> Self {
        Self(format!("{what}: {e}"))
    }
}

/// Seconds with millisecond precision, as the JSON lines print them.
pub fn secs(d: Duration) -> f64 {
    round(d.as_secs_f64(), 3)
}

pub fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_is_reported_apart_from_the_counts() {
        let mut r = Report::new(Scenario::Ratelimit);
        r.check("delivered", 3, 3);
        r.target("rate", 0.9, 1.1, 1.25);
        let line = r.json();
        assert_eq!(line["counts_ok"], true);
        assert_eq!(line["targets_ok"], false);
        assert_eq!(line["missed_targets"][0]["actual"], 1.25);
        r.targets[0].actual = 1.0;
        assert_eq!(r.json()["targets_ok"], true);
        assert!(Report::new(Scenario::Raw)
            .json()
            .get("targets_ok")
            .is_none());
    }

    #[test]
    fn every_scenario_parses_from_its_name() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        assert!("durable".parse::<Scenario>().is_ok());
        assert!("nope".parse::<Scenario>().is_err());
    }
}
