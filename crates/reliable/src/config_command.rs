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
        Action::Check { config } => check(config),
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

fn check(file: Option<PathBuf>) -> ExitCode {
    let loaded = match settings::load(file.as_deref(), &Overrides::default()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
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
