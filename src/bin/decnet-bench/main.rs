//! `decnet-bench <scenario>|all [--size small|full]`: one JSON line per scenario on
//! stdout (see the README's Performance section); warnings on stderr.
//!
//! The benchmark driver: the real worker, NATS in → signed HTTP out, against a private
//! nats-server, lean loopback receivers and a temporary SQLite database. Each scenario
//! yields one JSON line whose headline figures are ratios measured in the same run,
//! plus the counts that prove every event arrived once.

mod clock;
// The integration tests' nats-server and reload probe, one copy for both; the tests
// use more of the nats-server (restarts, raw bursts) than the bench does.
#[allow(dead_code)]
#[path = "../../../tests/it/helpers/nats.rs"]
mod nats;
#[path = "../../../tests/it/helpers/probe.rs"]
mod probe;
mod publisher;
mod raw;
mod receiver;
mod rig;
mod scenarios;
mod stats;

use std::{fmt, process::ExitCode, str::FromStr, time::Duration};

use clap::Parser;
use serde_json::{Map, Value};

#[derive(Parser)]
#[command(about = "Benchmark the webhook worker: NATS in, signed HTTP out")]
struct Args {
    /// raw, throughput, fanout, latency, isolation, scale, durable, ratelimit, templates, or all
    scenario: String,
    /// small runs every scenario tiny (a smoke test)
    #[arg(long, default_value = "full")]
    size: String,
}

fn main() -> ExitCode {
    // The worker it runs starts its template sandbox from this binary.
    if let Some(code) = decnet_webhook::shape::sandbox::child_entry() {
        return code;
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let size: Size = match args.size.parse() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    if args.scenario == "all" {
        return all(&args.size);
    }
    let scenario = match args.scenario.parse::<Scenario>() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    match run(scenario, size) {
        Ok(report) => {
            println!("{}", report.json());
            // A missed timing target is a figure to read, not a failed run.
            for t in report.missed_targets() {
                eprintln!(
                    "{scenario}: target missed: {} ({} not within {}..={})",
                    t.what, t.actual, t.low, t.high
                );
            }
            if report.failed_checks().next().is_some() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{scenario}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Each scenario in a process of its own, so none inherits another's memory (`scale`
/// reports RSS) or leftover threads.
fn all(size: &str) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("decnet-bench: cannot find its own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut code = ExitCode::SUCCESS;
    for scenario in Scenario::ALL {
        let status = std::process::Command::new(&exe)
            .arg(scenario.name())
            .args(["--size", size])
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => code = ExitCode::FAILURE,
            Err(e) => {
                eprintln!("{scenario}: cannot run: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

fn usage(error: &str) -> ExitCode {
    eprintln!("decnet-bench: {error}");
    ExitCode::from(2)
}

/// One benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Raw,
    Throughput,
    Fanout,
    Latency,
    Isolation,
    Scale,
    Durable,
    Ratelimit,
    Templates,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Raw,
        Scenario::Throughput,
        Scenario::Fanout,
        Scenario::Latency,
        Scenario::Isolation,
        Scenario::Scale,
        Scenario::Durable,
        Scenario::Ratelimit,
        Scenario::Templates,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Raw => "raw",
            Scenario::Throughput => "throughput",
            Scenario::Fanout => "fanout",
            Scenario::Latency => "latency",
            Scenario::Isolation => "isolation",
            Scenario::Scale => "scale",
            Scenario::Durable => "durable",
            Scenario::Ratelimit => "ratelimit",
            Scenario::Templates => "templates",
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
    fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            checks: Vec::new(),
            targets: Vec::new(),
            fields: Map::new(),
        }
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    fn check(&mut self, what: impl Into<String>, expected: u64, actual: u64) {
        self.checks.push(Check::new(what, expected, actual));
    }

    /// `actual` should lie within `low..=high`.
    fn target(&mut self, what: impl Into<String>, low: f64, high: f64, actual: f64) {
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
    fn setup(what: &str, e: impl fmt::Display) -> Self {
        Self(format!("{what}: {e}"))
    }
}

/// Run one scenario on a fresh actix system of its own (call it from a plain thread,
/// not from inside a runtime).
pub fn run(scenario: Scenario, size: Size) -> Result<Report, BenchError> {
    let system = actix_rt::System::new();
    let result = system.block_on(scenarios::run(scenario, size));
    // Dropping the system drops whatever the worker left unfinished (a stop is
    // bounded); sqlx hands back a dropped query's connection by spawning a task, which
    // needs an entered runtime.
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => {
            let _entered = rt.enter();
            drop(system);
        }
        Err(_) => drop(system),
    }
    result
}

/// Seconds with millisecond precision, as the JSON lines print them.
fn secs(d: Duration) -> f64 {
    round(d.as_secs_f64(), 3)
}

fn round(x: f64, places: i32) -> f64 {
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
