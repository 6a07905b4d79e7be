//! `reliable slo`: the CLI face of the `slo` crate.
//!
//! - `generate SPECS... -o DIR`: Prometheus rule files and `PrometheusRule`
//!   resources, one pair per spec file;
//! - `check SPECS...`: parse and validate only;
//! - `status`: per-SLO budget, burn rates and alerts, from the local
//!   platform's evaluator or from a Prometheus (see [`crate::slo_status`]);
//! - `gate`: the error-budget policy's verdict as an exit code.

use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SloArgs {
    #[command(subcommand)]
    command: SloCommand,
}

#[derive(Debug, Subcommand)]
enum SloCommand {
    /// Write Prometheus rules (and PrometheusRule resources) for the specs.
    Generate {
        /// Spec files or directories of *.yaml / *.yml specs.
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Output directory; created if missing.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Validate specs without writing anything.
    Check {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Print each SLO's target, SLI, budget left, burn rates and alerts.
    Status(crate::slo_status::StatusArgs),
    /// Exit 0 when the error-budget policy allows a release, else 1 with the reason.
    Gate(crate::slo_status::GateArgs),
}

pub fn run(args: SloArgs) -> ExitCode {
    match args.command {
        SloCommand::Generate { specs, output } => match generate(&specs, &output) {
            Ok(written) => {
                for file in written {
                    println!("wrote {}", file.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        SloCommand::Check { specs } => match slo::catalog::load_paths(&specs) {
            Ok(slos) => {
                println!("{} SLOs ok", slos.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        SloCommand::Status(args) => crate::slo_status::status(args),
        SloCommand::Gate(args) => crate::slo_status::gate(args),
    }
}

/// Writes `<stem>.rules.yml` and `<stem>.prometheusrule.yaml` per spec file.
pub fn generate(specs: &[PathBuf], output: &Path) -> Result<Vec<PathBuf>, String> {
    let slos = slo::catalog::load_paths(specs).map_err(|e| e.to_string())?;
    let mut by_file: BTreeMap<&str, Vec<&slo::Slo>> = BTreeMap::new();
    for s in &slos {
        by_file.entry(s.source.file.as_str()).or_default().push(s);
    }
    std::fs::create_dir_all(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut written = Vec::new();
    for (file, slos) in by_file {
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("slo")
            .trim_end_matches(".openslo");
        let rules = output.join(format!("{stem}.rules.yml"));
        let resource = output.join(format!("{stem}.prometheusrule.yaml"));
        let source = Path::new(file)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(file);
        write(&rules, &slo::emit::rule_file(&slos, source))?;
        let name = format!("slo-{stem}");
        write(&resource, &slo::emit::prometheus_rule(&name, &slos, source))?;
        written.push(rules);
        written.push(resource);
    }
    Ok(written)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
