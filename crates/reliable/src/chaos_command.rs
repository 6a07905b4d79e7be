//! `reliable chaos ...`: the CLI face of the `chaos` crate.
//!
//! - `proxy`: the fault proxy (toxiproxy's HTTP API, crates/chaos).
//! - `run EXPERIMENT.yaml`: a Chaos Toolkit-style experiment (steady-state
//!   hypothesis, method, rollbacks); see docs/tools/chaos.md. Exit codes:
//!   0 the hypothesis held, 1 it deviated, 2 bad input, 3 an action failed
//!   (aborted), 130 interrupted; rollbacks run in every case.

use chaos::experiment::{self, exit, RunOptions};
use chaos::proxy::{Proxies, ProxyServer, ProxySpec};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Serve the fault proxy: TCP proxies with injected faults, driven
    /// through Shopify toxiproxy's HTTP API (its clients work unchanged).
    Proxy(ProxyArgs),
    /// Run a chaos experiment: check the steady-state hypothesis before,
    /// during and after the method, then roll back.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address of the control API (toxiproxy's default; port 0 picks one,
    /// printed as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.1:8474")]
    listen: SocketAddr,
    /// Proxies to create at start: a JSON list as `POST /populate` takes
    /// (toxiproxy's `-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for the toxicity draws (default: from the clock), so a run
    /// affects the same connections when repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Log filter (as RELIABLE_LOG).
    #[arg(long, env = "RELIABLE_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The experiment file (YAML); see experiments/.
    experiment: PathBuf,
    /// `name=value`: sets `${name}`, over the file's `configuration`;
    /// repeatable.
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Print the journal as JSON on stdout (progress still on stderr).
    #[arg(long)]
    json: bool,
    /// Only read and check the file; run nothing.
    #[arg(long)]
    check: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected name=value"))?;
    Ok((name.trim().to_string(), value.to_string()))
}

pub fn run(args: ChaosArgs) -> ExitCode {
    match args.action {
        Action::Proxy(args) => proxy(args),
        Action::Run(args) => run_experiment(args),
    }
}

fn proxy(args: ProxyArgs) -> ExitCode {
    // Usage errors first: a bad file must not leave a half-started proxy.
    let specs = match &args.config {
        None => Vec::new(),
        Some(path) => match std::fs::read(path) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
            Ok(bytes) => match ProxySpec::list_from_json(&bytes) {
                Ok(specs) => specs,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        },
    };
    let telemetry = match kit::telemetry::init("chaos-proxy", &args.log) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(async {
        let stop = kit::shutdown::signal();
        let proxies = args.seed.map_or_else(Proxies::new, Proxies::with_seed);
        let (done, error) = proxies.populate(specs).await;
        if let Some(e) = error {
            eprintln!("error: {}: {e}", args.config.as_deref().unwrap_or_else(|| "config".as_ref()).display());
            proxies.shutdown().await;
            return ExitCode::FAILURE;
        }
        let server = match ProxyServer::start_with(args.listen, proxies).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        for p in &done {
            tracing::info!(proxy = %p.name, listen = %p.listen, upstream = %p.upstream, "proxy created from the config file");
        }
        println!("listening on {}", server.url());
        stop.await;
        server.shutdown().await;
        ExitCode::SUCCESS
    });
    telemetry.shutdown();
    code
}

fn run_experiment(args: RunArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.experiment) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.experiment.display());
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let base_dir = args
        .experiment
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let parsed = match experiment::parse(&text, &base_dir, &args.vars) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {}: {e}", args.experiment.display());
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    if args.check {
        println!("{}: ok", args.experiment.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ABORTED);
        }
    };
    let journal = runtime.block_on(async {
        let options = RunOptions {
            progress: !args.quiet,
            ..RunOptions::default()
        };
        let cancel = options.cancel.clone();
        // Ctrl-C or SIGTERM: stop the method, run the rollbacks.
        let signals = tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("interrupted: rolling back");
            cancel.cancel();
        });
        let journal = experiment::run(&parsed, options).await;
        signals.abort();
        journal
    });
    if args.json {
        match serde_json::to_string_pretty(&journal) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: cannot print the journal: {e}"),
        }
    } else {
        print!("{}", journal.render());
    }
    ExitCode::from(journal.exit_code())
}
