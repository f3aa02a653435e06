//! `decnet-bench <scenario>|all [--size small|full]`: one JSON line per scenario on
//! stdout (see DESIGN.md, BENCH); warnings on stderr.

use std::process::ExitCode;

use clap::Parser;
use decnet_webhook::bench::{self, Scenario, Size};

#[derive(Parser)]
#[command(about = "Benchmark the webhook worker: NATS in, signed HTTP out")]
struct Args {
    /// raw, throughput, fanout, latency, isolation, scale, durable, ratelimit, or all
    scenario: String,
    /// small runs every scenario tiny (a smoke test)
    #[arg(long, default_value = "full")]
    size: String,
}

fn main() -> ExitCode {
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
    match bench::run(scenario, size) {
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
