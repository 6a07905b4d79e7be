//! `reliable drill ...`: drills that exercise a safety net for real and
//! measure it. `canary` runs bad, good, slightly worse and interrupted
//! canaries in one process under load and prints one table; `outage` is
//! the game day: faults under load, MTTD and MTTR from the live
//! evaluator's rules on a simulated clock; `dr` destroys and restores the
//! platform's state and measures RTO and RPO.

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
    /// The game day: the shortener and orders under generated load, one
    /// fault per scenario, then its removal; MTTD and MTTR from the live
    /// evaluator's rules on a simulated clock. Exit 2 for bad input
    /// (nothing started), 1 if the drill could not run or, with
    /// --fail-on-goal, a goal was missed.
    Outage(OutageArgs),
    /// The disaster-recovery drill: seed links and orders, back up while
    /// writers write, destroy the store, restore, start and verify; RTO
    /// and RPO measured. SQLite in a temporary data dir by default;
    /// PostgreSQL with --database-url / RELIABLE_DATABASE_URL (an empty
    /// database: the drill destroys it). Exit 0 when every check held, 1
    /// when one failed or the drill could not run, 2 for bad input.
    Dr(DrArgs),
}

#[derive(Debug, Args)]
struct DrArgs {
    /// Where to run: --database-url for PostgreSQL; --data-dir is the
    /// parent of the drill's temporary data dir on SQLite.
    #[command(flatten)]
    store: crate::settings::StoreFlags,
    /// Links to seed (each with one visit).
    #[arg(long, default_value_t = 1_000_000)]
    links: u64,
    /// Orders to seed (each with its published outbox event).
    #[arg(long, default_value_t = 100_000)]
    orders: u64,
    /// Random seeded links (and orders) read back after the restore.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Writes per second of each writer (links, orders) during the backup.
    #[arg(long, default_value_t = 100)]
    write_rate: u32,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct OutageArgs {
    /// The platform whose change timeline gets the run.
    #[command(flatten)]
    store: crate::settings::StoreFlags,
    /// Modules to run, comma-separated: shortener, orders (default: both).
    #[arg(long, value_delimiter = ',')]
    modules: Vec<String>,
    /// Faults, repeated or comma-separated: orders-db, shortener-errors,
    /// latency, or all. Default: the measured set (full outage, 10 % and
    /// 2 % shortener errors, orders-db).
    #[arg(long, value_delimiter = ',')]
    fault: Vec<String>,
    /// Shares of 500s for shortener-errors, each in (0, 1], one scenario
    /// each (default 0.3 when the fault is named).
    #[arg(
        long = "error-ratio",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    error_ratio: Vec<f64>,
    /// Added latency for the latency fault (default 250ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    latency: Option<Duration>,
    /// Requests per simulated 10 s tick (the live evaluator's tick).
    #[arg(long, default_value_t = drill::outage::DEFAULT_TICK_REQUESTS)]
    tick_requests: u32,
    /// Simulated steady state before each fault (at least 1h; 6h covers
    /// the page windows, 3d the ticket windows).
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    steady: Duration,
    /// Longest simulated fault; it is removed once page and ticket fired.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    max_fault: Duration,
    /// Longest simulated wait for the alerts to resolve.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    max_recovery: Duration,
    /// Print the rows as JSON instead of the table and arithmetic.
    #[arg(long)]
    json: bool,
    /// Exit 1 when a scenario missed its goal.
    #[arg(long)]
    fail_on_goal: bool,
}

pub fn run(args: DrillArgs) -> ExitCode {
    let (rate, dwell, seed, scenario, json) = match args.command {
        DrillCommand::Canary {
            rate,
            dwell,
            seed,
            scenario,
            json,
        } => (rate, dwell, seed, scenario, json),
        DrillCommand::Outage(outage) => return run_outage(outage),
        DrillCommand::Dr(dr) => return run_dr(dr),
    };
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

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn run_outage(args: OutageArgs) -> ExitCode {
    use drill::outage;
    let request = outage::OutageRequest {
        modules: args.modules,
        faults: args.fault,
        error_ratios: args.error_ratio,
        latency: args.latency,
        tick_requests: args.tick_requests,
        steady: args.steady,
        max_fault: args.max_fault,
        max_recovery: args.max_recovery,
        fail_on_goal: args.fail_on_goal,
    };
    let config = match args.store.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let drill = match outage::OutageDrill::parse(&request) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let slos = match slo::catalog::load_platform() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the platform's SLO specs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    // The run goes on the platform's change timeline (the data dir's
    // store, or PostgreSQL when configured), next to the SLO charts.
    let memory = kit::changes::MemoryChangeLog::new(16);
    let recorder = kit::changes::ChangeRecorder(memory.clone());
    let result = runtime.block_on(async {
        let rows = outage::run(&drill, &recorder).await;
        for change in memory.snapshot().into_iter().rev() {
            crate::changes_command::record(&config, change.event).await;
        }
        rows
    });
    match result {
        Ok(rows) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                print!("{}", outage::table(&rows));
                println!();
                print!("{}", outage::arithmetic(&drill, &slos));
            }
            if drill.fail_on_goal && rows.iter().any(|r| !r.goal_met) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_dr(args: DrArgs) -> ExitCode {
    use drill::dr;
    if args.links > 100_000_000 || args.orders > 100_000_000 {
        eprintln!("error: --links and --orders must be at most 100000000");
        return ExitCode::from(2);
    }
    if !(1..=10_000).contains(&args.write_rate) {
        eprintln!("error: --write-rate must be between 1 and 10000");
        return ExitCode::from(2);
    }
    if args.probes > 1_000_000 {
        eprintln!("error: --probes must be at most 1000000");
        return ExitCode::from(2);
    }
    let config = match args.store.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut drill = dr::DrDrill::new(
        crate::backup_command::stores(),
        crate::backup_command::created_by(),
    );
    drill.links = args.links;
    drill.orders = args.orders;
    drill.probes = args.probes;
    drill.write_rate = args.write_rate;
    drill.engine = match config.database_url() {
        Some(url) => dr::DrEngine::Postgres {
            url: url.to_string(),
        },
        None => dr::DrEngine::Sqlite {
            parent: args.store.data_dir.clone(),
        },
    };
    if let dr::DrEngine::Sqlite {
        parent: Some(parent),
    } = &drill.engine
    {
        if let Err(e) = std::fs::create_dir_all(parent) {
            eprintln!("error: creating {}: {e}", parent.display());
            return ExitCode::FAILURE;
        }
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(dr::run(&drill)) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", dr::table(&report));
            }
            if report.passed {
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
