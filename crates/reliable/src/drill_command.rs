//! `reliable drill ...`: drills that exercise a safety net for real and
//! measure it. `canary` runs bad, good, slightly worse and interrupted
//! canaries in one process under load and prints one table.

use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(subcommand)]
    command: DrillCommand,
}

#[derive(Debug, Subcommand)]
enum DrillCommand {
    /// The canary drill: the gateway in front of two pools of the
    /// shortener, a canary per scenario, judged by the real controller.
    /// Exit 0 when every scenario ended as it should.
    Canary {
        /// Requests per second through the gateway.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Dwell of each of the six steps (5, 10, 30, 50, 80, 100 %).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        dwell: Duration,
        /// Seed of the bad version's coin flips.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scenarios to run, comma-separated: errors, latency, good,
        /// slight, killed (default: all).
        #[arg(long, value_delimiter = ',')]
        scenario: Vec<String>,
        /// Print the rows as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: DrillArgs) -> ExitCode {
    let DrillCommand::Canary {
        rate,
        dwell,
        seed,
        scenario,
        json,
    } = args.command;
    let mut scenarios = Vec::new();
    for name in &scenario {
        match drill::canary::Scenario::parse(name) {
            Some(s) => scenarios.push(s),
            None => {
                eprintln!(
                    "error: --scenario {name}: expected errors, latency, good, slight or killed"
                );
                return ExitCode::from(2);
            }
        }
    }
    if !(rate.is_finite() && rate > 0.0 && rate <= 100_000.0) {
        eprintln!("error: --rate must be above 0 and at most 100000");
        return ExitCode::from(2);
    }
    if dwell < Duration::from_secs(1) {
        eprintln!("error: --dwell must be at least 1s");
        return ExitCode::from(2);
    }
    let drill = drill::canary::CanaryDrill {
        rate,
        dwell,
        seed,
        scenarios: if scenarios.is_empty() {
            drill::canary::Scenario::ALL.to_vec()
        } else {
            scenarios
        },
        ..Default::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(drill::canary::run(&drill)) {
        Ok(rows) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                print!("{}", drill::canary::table(&rows));
            }
            if rows.iter().all(|r| r.as_expected) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
