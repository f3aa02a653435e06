//! `decnet-bench <scenario>|all [--size small|full]`: one JSON line per scenario on
//! stdout (see the README's Performance section); warnings on stderr.
//!
//! The benchmark driver: the real worker, NATS in → signed HTTP out, against a private
//! nats-server, lean loopback receivers and a temporary SQLite database. Each scenario
//! yields one JSON line whose headline figures are ratios measured in the same run,
//! plus the counts that prove every event arrived once.

mod clock;
mod console_stats;
// The integration tests' nats-server and reload probe, one copy for both; the tests
// use more of the nats-server (restarts, raw bursts) than the bench does.
#[allow(dead_code)]
#[path = "../../../tests/it/helpers/nats.rs"]
mod nats;
#[allow(dead_code)]
#[path = "../../../tests/it/helpers/cluster.rs"]
mod nats_cluster;
#[path = "../../../tests/it/helpers/probe.rs"]
mod probe;
mod publisher;
mod raw;
mod receiver;
mod report;
mod rig;
mod scenarios;
mod stats;

use std::process::ExitCode;

use clap::Parser;
use report::{BenchError, Report, Scenario, Size};

#[derive(Parser)]
#[command(about = "Benchmark the webhook worker: NATS in, signed HTTP out")]
struct Args {
    /// raw, throughput, fanout, filters, latency, isolation, scale, durable, ratelimit, templates, cluster, stats, burst, or all
    scenario: String,
    /// small runs every scenario tiny (a smoke test)
    #[arg(long, default_value = "full")]
    size: String,
}

fn main() -> ExitCode {
    // The allocator as `decnet` sets it, so the worker measured is the one that runs.
    decnet_webhook::memory::configure_allocator();
    // The worker it runs starts its template sandbox from this binary.
    if let Some(code) = decnet_webhook::shape::sandbox::child_entry() {
        return code;
    }
    // A worker in a process of its own, stopped with SIGTERM or killed with SIGKILL.
    if std::env::args().nth(1).as_deref() == Some(rig::WORKER_CHILD) {
        return rig::worker_child(std::env::args().skip(2));
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
