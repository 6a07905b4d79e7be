//! `reliable load merge` and `reliable load plan`: the tools around a run.
//!
//! `merge` reads the `--out-hist` files of several agents and prints one
//! report, the same summary, JSON and HTML a run prints, with exact
//! percentiles (the histograms add). Thresholds are judged on the merge:
//! the files' own (they must agree), or a scenario file's with
//! `--thresholds`, and exit 99 when one is crossed, as a run does.
//!
//! `plan` prints the arithmetic from daily active users to rates, cores,
//! replicas and the PostgreSQL write rate (`load::capacity`).

use crate::load_command::THRESHOLDS_FAILED;
use clap::{Args, Subcommand};
use load::capacity::{self, CapacityModel};
use load::hist::{self, HistRun};
use load::output;
use load::scenario::{self, CompileOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum LoadTool {
    /// Merge the --out-hist files of several agents into one report:
    /// exact percentiles (histograms add), counts summed.
    Merge(MergeArgs),
    /// From daily active users to rates, cores, replicas and the
    /// PostgreSQL write rate (docs/operations/scaling.md).
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Files written by `reliable load ... --out-hist FILE`.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the merged results as JSON (the run's --json shape).
    #[arg(long)]
    json: bool,
    /// Write the merged HTML report here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the merged histograms here (a file `merge` reads again).
    #[arg(long, value_name = "FILE")]
    out_hist: Option<PathBuf>,
    /// Judge the merge by this scenario file's thresholds instead of the
    /// ones the files carry.
    #[arg(long, value_name = "FILE.yaml")]
    thresholds: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Daily active users.
    #[arg(long)]
    dau: f64,
    /// Link creates per user per day.
    #[arg(long, default_value_t = capacity::ACTIONS_PER_USER_PER_DAY)]
    actions_per_user: f64,
    /// Redirects per create.
    #[arg(long, default_value_t = capacity::READ_WRITE_RATIO)]
    read_write_ratio: f64,
    /// The busiest hour against the day's average.
    #[arg(long, default_value_t = capacity::PEAK_FACTOR)]
    peak_factor: f64,
    /// A viral spike against the day's average.
    #[arg(long, default_value_t = capacity::SPIKE_FACTOR)]
    spike_factor: f64,
    /// Redirects per second one core carries (default measured: 39.3 us of
    /// CPU per redirect through the gateway).
    #[arg(long, default_value_t = capacity::REDIRECTS_PER_CORE)]
    redirects_per_core: f64,
    /// Link creates per second one core carries.
    #[arg(long, default_value_t = capacity::CREATES_PER_CORE)]
    creates_per_core: f64,
    /// PostgreSQL rows written per visit.
    #[arg(long, default_value_t = capacity::PG_WRITES_PER_VISIT)]
    pg_writes_per_visit: f64,
    /// PostgreSQL rows written per link create.
    #[arg(long, default_value_t = capacity::PG_WRITES_PER_CREATE)]
    pg_writes_per_create: f64,
    /// PostgreSQL WAL bytes written per visit (measured by
    /// scripts/bench-pg-writes).
    #[arg(long = "pg-wal-per-visit", default_value_t = capacity::PG_WAL_BYTES_PER_VISIT)]
    pg_wal_bytes_per_visit: f64,
    /// PostgreSQL WAL bytes written per link create.
    #[arg(long = "pg-wal-per-create", default_value_t = capacity::PG_WAL_BYTES_PER_CREATE)]
    pg_wal_bytes_per_create: f64,
    /// The busiest a core is planned to be (0.6 = 60%).
    #[arg(long, default_value_t = capacity::UTILIZATION)]
    utilization: f64,
    /// Cores each replica gets.
    #[arg(long, default_value_t = capacity::CORES_PER_REPLICA)]
    cores_per_replica: f64,
    /// The fewest replicas, whatever the load.
    #[arg(long, default_value_t = capacity::MIN_REPLICAS)]
    min_replicas: u64,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(tool: LoadTool) -> ExitCode {
    match tool {
        LoadTool::Merge(args) => merge(args),
        LoadTool::Plan(args) => plan(args),
    }
}

fn merge(args: MergeArgs) -> ExitCode {
    let mut runs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        match HistRun::read(path) {
            Ok(run) => runs.push((path.clone(), run)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let thresholds = match &args.thresholds {
        Some(path) => match scenario_thresholds(path) {
            Ok(plan) => Some(plan),
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut merged = match hist::merge(runs, thresholds.is_some()) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(plan) = thresholds {
        merged.plan.thresholds = plan.thresholds;
        if plan.dau.is_some() {
            merged.plan.dau = plan.dau;
        }
    }
    let (plan, results) = (&merged.plan, &merged.results);
    let verdicts = load::threshold::evaluate_all(&plan.thresholds, results);
    if let Some(path) = &args.out_hist {
        if let Err(e) = merged.write(path) {
            eprintln!("error: --out-hist {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "merged {} runs from {} files",
        merged.agents,
        args.files.len()
    );
    if args.json {
        println!("{}", output::json(plan, results, &verdicts));
    } else if args.out_hist.as_deref() != Some(std::path::Path::new("-")) {
        print!("{}", output::summary(plan, results, &verdicts));
    }
    if let Some(path) = &args.html {
        match std::fs::write(path, output::html(plan, results, &verdicts)) {
            Ok(()) => eprintln!("report: {}", path.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if verdicts.iter().all(|v| v.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(THRESHOLDS_FAILED)
    }
}

/// The scenario file's plan, for its thresholds (and DAU text). Its
/// `{{target}}` is given a placeholder: nothing is sent.
fn scenario_thresholds(path: &std::path::Path) -> Result<load::plan::Plan, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--thresholds: cannot read {}: {e}", path.display()))?;
    let options = CompileOptions {
        target: url::Url::parse("http://merge.invalid/").ok(),
    };
    scenario::compile(&text, &options).map_err(|e| format!("--thresholds {}: {e}", path.display()))
}

fn plan(args: PlanArgs) -> ExitCode {
    let model = CapacityModel {
        dau: args.dau,
        actions_per_user_per_day: args.actions_per_user,
        read_write_ratio: args.read_write_ratio,
        peak_factor: args.peak_factor,
        spike_factor: args.spike_factor,
        redirects_per_core: args.redirects_per_core,
        creates_per_core: args.creates_per_core,
        pg_writes_per_visit: args.pg_writes_per_visit,
        pg_writes_per_create: args.pg_writes_per_create,
        pg_wal_bytes_per_visit: args.pg_wal_bytes_per_visit,
        pg_wal_bytes_per_create: args.pg_wal_bytes_per_create,
        utilization: args.utilization,
        cores_per_replica: args.cores_per_replica,
        min_replicas: args.min_replicas,
    };
    match model.plan() {
        Ok(plan) if args.json => match serde_json::to_string_pretty(&plan) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(plan) => {
            print!("{plan}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
