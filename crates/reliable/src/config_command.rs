//! `reliable config`: check a configuration, list every key.
//!
//! `check` loads exactly what `up`/`serve` would (file, environment,
//! validation; nothing is opened) and prints the effective configuration
//! with secrets redacted, or the error naming the key and where its value
//! came from, with exit code 2. `defaults` prints every key with its
//! environment variable, default and doc; `--markdown` is the reference
//! page committed as docs/reference/configuration.md.

use crate::settings::{self, Config, Overrides, ALIASES};
use clap::{Args, Subcommand};
use kit::config::reference;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Validate a configuration and print the effective one (secrets
    /// redacted); exit code 2 on error.
    Check {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also run the checks that depend on which modules share the
        /// process, as `serve --target` would before opening anything
        /// (e.g. every gateway route names a pool that exists).
        #[arg(long, value_delimiter = ',')]
        target: Vec<String>,
    },
    /// Print every key with its default, environment variable and doc.
    Defaults {
        /// As the Markdown reference page.
        #[arg(long)]
        markdown: bool,
    },
}

pub fn run(args: ConfigArgs) -> ExitCode {
    match args.action {
        Action::Check { config, target } => check(config, &target),
        Action::Defaults { markdown } => {
            let entries = reference::entries::<Config>();
            if markdown {
                print!("{}", reference::markdown(&entries, ALIASES));
            } else {
                print!("{}", reference::text(&entries));
            }
            ExitCode::SUCCESS
        }
    }
}

fn check(file: Option<PathBuf>, target: &[String]) -> ExitCode {
    let loaded = match settings::load(file.as_deref(), &Overrides::default()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check_targets(&loaded.config, target) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    match toml::to_string(&loaded.config) {
        Ok(text) => {
            println!("# effective configuration (secrets redacted)\n{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The checks `serve --target` makes once it knows which modules share the
/// process: the gateway's routes may name only its configured pools and
/// the co-located modules (the gateway checks the same at start).
fn check_targets(config: &Config, target: &[String]) -> Result<(), String> {
    if target.is_empty() {
        return Ok(());
    }
    let targets = crate::platform::Targets::parse(target)?;
    let names = targets.names();
    if names.contains(&gateway::SERVICE) {
        let co_located: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| *n != gateway::SERVICE)
            .collect();
        if config.gateway.routes.is_empty() && co_located.is_empty() {
            return Err("the gateway has no routes: add [[gateway.routes]] and [gateway.pools.NAME] to the config file, or co-locate a module".into());
        }
        config
            .gateway
            .validate_pools(&co_located)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
