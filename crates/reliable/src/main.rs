//! `reliable`: the whole platform in one binary.
//!
//! This file only parses the command line and hands over; module wiring
//! lives in [`platform`], configuration in [`settings`].
#![forbid(unsafe_code)]

mod alert_store;
#[cfg(test)]
mod allocator_tests;
mod backup_command;
mod canary_command;
mod changes_command;
mod chaos_command;
mod config_command;
mod console_sources;
mod console_traffic;
mod console_wiring;
mod cost_api;
mod cost_command;
mod cost_console;
mod cost_live;
mod cost_sample;
mod cost_store;
mod cost_url;
mod drill_command;
mod keys_command;
mod load_command;
mod load_tools_command;
mod metrics_tick;
mod mtls;
mod openapi;
mod pki_command;
mod platform;
mod registry;
mod settings;
mod slo_command;
mod slo_live;
mod slo_series;
mod slo_status;
mod status_command;
mod status_page;

/// mimalloc: the request path allocates many small, short-lived objects
/// across threads, where glibc malloc's arena locking and consolidation
/// showed up at ~9% of CPU in profiles of the redirect benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "reliable",
    version,
    about = "A reliability-first service platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole platform in one process on embedded defaults (SQLite
    /// under the data dir); the first command to try.
    Up {
        #[command(flatten)]
        common: settings::CommonFlags,
    },
    /// Run chosen modules on real backends (PostgreSQL via
    /// RELIABLE_DATABASE_URL), as a Kubernetes pod does.
    Serve {
        /// Modules to run, comma-separated: shortener, orders, notifier,
        /// inference, gateway, or `all`.
        #[arg(long, value_delimiter = ',', required = true)]
        target: Vec<String>,
        /// PostgreSQL URL (prefer the RELIABLE_DATABASE_URL environment
        /// variable: flags show up in process listings).
        #[arg(long)]
        database_url: Option<String>,
        #[command(flatten)]
        common: settings::CommonFlags,
    },
    /// Generate HTTP load: fixed rate (open model, latency from the
    /// schedule) with --rate, else as fast as possible (closed model).
    Load(Box<load_command::LoadArgs>),
    /// SLOs as code: generate Prometheus rules, show status, gate releases.
    Slo(slo_command::SloArgs),
    /// Progressive delivery: run a canary spec and follow its decisions,
    /// or check, list, abort and promote runs.
    Canary(canary_command::CanaryArgs),
    /// Fault injection: the fault proxy (toxiproxy's API) and chaos
    /// experiments (a steady-state hypothesis checked before, during and
    /// after faults, then rollbacks).
    Chaos(chaos_command::ChaosArgs),
    /// Drills that exercise a safety net for real and measure it.
    Drill(drill_command::DrillArgs),
    /// Back up every module's store (SQLite files or PostgreSQL schemas)
    /// to a new directory or .tar file, verified.
    Backup(backup_command::BackupArgs),
    /// Restore a backup into an empty data dir or database, verified.
    Restore(backup_command::RestoreArgs),
    /// The change timeline: what changed, when, by whom.
    Changes(changes_command::ChangesArgs),
    /// What each module, route, model, key, pod or namespace cost over a
    /// window, by OpenCost's allocation rules: from a running platform's
    /// own measurement (--url, the default) or from Prometheus.
    Cost(cost_command::CostArgs),
    /// Manage the gateway's API keys (create prints the key once).
    Keys(keys_command::KeysArgs),
    /// Check a configuration (`check`) or list every key (`defaults`).
    Config(config_command::ConfigArgs),
    /// Print the OpenAPI 3.1 document that `up` (or `serve --target ...`)
    /// serves at /openapi.json, without starting anything.
    Openapi {
        /// Modules whose APIs to include, comma-separated (default: all);
        /// `console` alone prints the console's JSON API (its own listener).
        #[arg(long, value_delimiter = ',')]
        target: Vec<String>,
        /// A readable Markdown page instead of JSON (docs/api/README.md).
        #[arg(long)]
        markdown: bool,
    },
    /// A development CA for mTLS between modules (`init`) and the
    /// certificates it issues (`issue`).
    Pki(pki_command::PkiArgs),
    /// The public status page's incident notes (add, update, list).
    Status(status_command::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mode, config_file, overrides) = match cli.command {
        Command::Load(args) => return load_command::run(*args),
        Command::Slo(args) => return slo_command::run(args),
        Command::Canary(args) => return canary_command::run(args),
        Command::Chaos(args) => return chaos_command::run(args),
        Command::Drill(args) => return drill_command::run(args),
        Command::Backup(args) => return backup_command::run_backup(args),
        Command::Restore(args) => return backup_command::run_restore(args),
        Command::Changes(args) => return changes_command::run(args),
        Command::Keys(args) => return keys_command::run(args),
        Command::Cost(args) => return cost_command::run(args),
        Command::Config(args) => return config_command::run(args),
        Command::Openapi { target, markdown } => {
            // The console's JSON API is served on its own listener, so it
            // has its own document.
            if target == ["console"] {
                let doc = console::openapi();
                if markdown {
                    print!("{}", openapi::markdown(&doc));
                } else {
                    print!("{}", kit::openapi::to_json(&doc));
                }
                return ExitCode::SUCCESS;
            }
            let targets = if target.is_empty() {
                Ok(platform::Targets::all())
            } else {
                platform::Targets::parse(&target)
            };
            return match targets {
                Ok(targets) => {
                    let doc = openapi::document(&targets.entries());
                    if markdown {
                        print!("{}", openapi::markdown(&doc));
                    } else {
                        print!("{}", openapi::to_json(&doc));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Pki(args) => return pki_command::run(args),
        Command::Status(args) => return status_command::run(args),
        Command::Up { common } => (
            platform::Mode::Up,
            common.config.clone(),
            common.into_overrides(None),
        ),
        Command::Serve {
            target,
            database_url,
            common,
        } => match platform::Targets::parse(&target) {
            Ok(targets) => (
                platform::Mode::Serve(targets),
                common.config.clone(),
                common.into_overrides(database_url),
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let loaded = match settings::load(config_file.as_deref(), &overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(platform::run(mode, loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reliable stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The multi-threaded Tokio runtime (`TOKIO_WORKER_THREADS` sets its size).
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}
