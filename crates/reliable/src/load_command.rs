//! `reliable load`: the CLI face of the `load` crate.
//!
//! Two modes: a scenario file (`reliable load FILE.yaml --target URL`),
//! and the quick mode (`reliable load --url URL`) that the benchmark
//! scripts use. Both can write their histograms (`--out-hist`) and wait
//! for a wall-clock start (`--start-at`), so several agents make one test;
//! `reliable load merge` and `reliable load plan` live in
//! `load_tools_command.rs`. Exit codes: 0 when every threshold holds, 99
//! when one fails (as k6 does, so CI and the canary drill can gate on it),
//! 2 for a file or flag that does not parse (or a start already past), 1
//! when setup cannot seed its data.

use crate::load_tools_command::{self, LoadTool};
use clap::Args;
use http::{HeaderName, HeaderValue, Method};
use load::hist::HistRun;
use load::observe::Observer;
use load::output;
use load::scenario::{self, CompileOptions};
use load::start_at::StartAt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The exit code of a run whose thresholds failed.
pub const THRESHOLDS_FAILED: u8 = 99;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadArgs {
    #[command(subcommand)]
    tool: Option<LoadTool>,
    /// A scenario file (YAML); see docs/tools/load-scenarios.md.
    #[arg(conflicts_with_all = ["url", "rate", "method", "headers"])]
    scenario: Option<PathBuf>,
    /// The URL `{{target}}` stands for in the scenario file.
    #[arg(long, requires = "scenario")]
    target: Option<url::Url>,
    /// Quick mode: the one URL every request goes to.
    #[arg(long, required_unless_present = "scenario")]
    url: Option<url::Url>,
    /// Quick mode: requests per second (open model). Omit for maximum
    /// throughput.
    #[arg(long)]
    rate: Option<f64>,
    /// Quick mode: measured duration, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Quick mode: unmeasured run before the measured one.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Quick mode: concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Quick mode: request method.
    #[arg(long)]
    method: Option<Method>,
    /// Quick mode: extra request header, `Name: value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Quick mode: a request slower than this is an error.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print the results as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write the per-second series as CSV to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the HTML report here (scenario mode); `-` for none.
    #[arg(long, default_value = "load-report.html")]
    html: PathBuf,
    /// Push the run's metrics to this Prometheus Pushgateway URL.
    #[arg(long)]
    prometheus_push: Option<url::Url>,
    /// How often to push while the run goes on.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, requires = "prometheus_push")]
    prometheus_push_every: Duration,
    /// Generator threads per scenario (default: one per core in the closed
    /// model; in the open model one per 25,000/s of peak rate, at most one
    /// per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the run's HDR histograms and counters to this file, for
    /// `reliable load merge` (docs/tools/load-output.md). `-` writes it
    /// to stdout and prints nothing else there.
    #[arg(long, value_name = "FILE")]
    out_hist: Option<PathBuf>,
    /// Begin the load at this wall-clock time (after setup), so agents on
    /// several machines start together: RFC 3339 (`2026-12-02T03:00:00Z`)
    /// or Unix seconds. A time more than 2 s past is an error.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    start_at: Option<StartAt>,
    /// Scenario mode: judge no threshold (none aborts the run or sets the
    /// exit code); they are still written to --out-hist, for the merge of
    /// every agent to judge.
    #[arg(long, requires = "scenario")]
    no_thresholds: bool,
}

fn parse_start_at(value: &str) -> Result<StartAt, String> {
    StartAt::parse(value).map_err(|e| e.to_string())
}

fn parse_header(value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = value
        .split_once(':')
        .ok_or_else(|| "expected `Name: value`".to_string())?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| e.to_string())?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| e.to_string())?;
    Ok((name, value))
}

pub fn run(mut args: LoadArgs) -> ExitCode {
    if let Some(tool) = args.tool.take() {
        return load_tools_command::run(tool);
    }
    if args.json && is_stdout(args.out_hist.as_deref()) {
        eprintln!("error: --json and --out-hist - both want stdout; give --out-hist a file");
        return ExitCode::from(2);
    }
    if let Some(start_at) = &args.start_at {
        // Refuse a start already past before setup sends anything.
        if let Err(e) = start_at.delay(chrono::Utc::now()) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let options = load::EngineOptions {
        threads: args.threads.map(|t| t.max(1)),
        ..Default::default()
    };
    // The generator runs on its own threads; this runtime only hosts the
    // collector, setup and teardown.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match &args.scenario {
        Some(path) => runtime.block_on(run_scenario(path, &args, &options)),
        None => runtime.block_on(run_quick(&args, &options)),
    }
}

async fn run_quick(args: &LoadArgs, options: &load::EngineOptions) -> ExitCode {
    let Some(url) = args.url.clone() else {
        eprintln!("error: --url or a scenario file is required");
        return ExitCode::from(2);
    };
    let spec = load::LoadSpec {
        url,
        method: args.method.clone().unwrap_or(Method::GET),
        headers: args.headers.clone(),
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        timeout: args.timeout,
    };
    match load::run_url_at(spec, options, args.start_at.as_ref()).await {
        Ok(quick) => {
            let report = quick.report;
            if let Some(path) = &args.out_hist {
                if !write_hist(path, &HistRun::of(&quick.plan, &quick.results)) {
                    return ExitCode::FAILURE;
                }
                if is_stdout(Some(path)) {
                    return ExitCode::SUCCESS;
                }
            }
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run_scenario(
    path: &std::path::Path,
    args: &LoadArgs,
    options: &load::EngineOptions,
) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let compile_options = CompileOptions {
        target: args.target.clone(),
    };
    let mut plan = match scenario::compile(&text, &compile_options) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let unjudged = if args.no_thresholds {
        std::mem::take(&mut plan.thresholds)
    } else {
        Vec::new()
    };
    // With `--out-hist -`, stdout carries the file and nothing else.
    let quiet = is_stdout(args.out_hist.as_deref());
    if let Some(dau) = plan.dau.as_ref().filter(|_| !quiet) {
        eprintln!("{dau}");
    }
    let mut observers: Vec<Box<dyn Observer>> = Vec::new();
    if !args.json && !quiet {
        if let Some(progress) = output::Progress::new() {
            observers.push(Box::new(progress));
        }
    }
    if let Some(out) = &args.out {
        match output::CsvSeries::create(out) {
            Ok(csv) => observers.push(Box::new(csv)),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", out.display());
                return ExitCode::from(2);
            }
        }
    }
    if let Some(url) = &args.prometheus_push {
        let run_id = output::default_run_id();
        match output::PrometheusPush::new(url.as_str(), &run_id, args.prometheus_push_every) {
            Ok(push) => observers.push(Box::new(push)),
            Err(e) => {
                eprintln!("error: --prometheus-push {url}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let results = match load::run_at(&plan, options, &mut observers, args.start_at.as_ref()).await {
        Ok(results) => results,
        Err(load::SetupError::StartAt(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verdicts = load::threshold::evaluate_all(&plan.thresholds, &results);
    if let Some(path) = &args.out_hist {
        let mut hist = HistRun::of(&plan, &results);
        if args.no_thresholds {
            hist.plan.thresholds = unjudged;
        }
        if !write_hist(path, &hist) {
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        println!("{}", output::json(&plan, &results, &verdicts));
    } else if !quiet {
        print!("{}", output::summary(&plan, &results, &verdicts));
    }
    if args.html.as_os_str() != "-" {
        match std::fs::write(&args.html, output::html(&plan, &results, &verdicts)) {
            Ok(()) if quiet => {}
            Ok(()) => eprintln!("report: {}", args.html.display()),
            Err(e) => eprintln!("error: cannot write {}: {e}", args.html.display()),
        }
    }
    if verdicts.iter().all(|v| v.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(THRESHOLDS_FAILED)
    }
}

fn is_stdout(path: Option<&Path>) -> bool {
    path.is_some_and(|p| p.as_os_str() == "-")
}

/// Writes the `--out-hist` file; false (and the error said) if it failed.
fn write_hist(path: &Path, run: &HistRun) -> bool {
    match run.write(path) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: --out-hist {e}");
            false
        }
    }
}
