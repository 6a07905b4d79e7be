//! `reliable slo`: the CLI face of the `slo` crate.
//!
//! - `generate SPECS... -o DIR [--pricing cost.yaml]`: Prometheus rule
//!   files and `PrometheusRule` resources, one pair per spec file, and with
//!   a pricing file the budget alerts as `cost.rules.yml` and
//!   `cost.prometheusrule.yaml` (`cost::budget_rules`);
//! - `dashboards SPECS... -o DIR`: a Grafana dashboard per spec file, as
//!   JSON and as a ConfigMap for the Grafana sidecar, plus a
//!   `kustomization.yaml` listing the ConfigMaps;
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
        /// A pricing file (cost.example.yaml): also write its monthly
        /// budgets as burn-rate alerts, `cost.rules.yml` and
        /// `cost.prometheusrule.yaml`.
        #[arg(long)]
        pricing: Option<PathBuf>,
    },
    /// Write a Grafana dashboard (JSON and ConfigMap) per spec file.
    Dashboards {
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
        SloCommand::Generate {
            specs,
            output,
            pricing,
        } => report(generate(&specs, &output, pricing.as_deref())),
        SloCommand::Dashboards { specs, output } => report(dashboards(&specs, &output)),
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

fn report(result: Result<Vec<PathBuf>, String>) -> ExitCode {
    match result {
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
    }
}

/// One spec file's SLOs, with the names its outputs take.
struct SpecFile<'a> {
    /// `gateway` for `slo/gateway.yaml` (and `gateway.openslo.yaml`).
    stem: &'a str,
    /// The file name the generated headers cite.
    source: &'a str,
    slos: Vec<&'a slo::Slo>,
}

/// The SLOs grouped by spec file, in file-name order.
fn by_file(slos: &[slo::Slo]) -> Vec<SpecFile<'_>> {
    let mut by_file: BTreeMap<&str, Vec<&slo::Slo>> = BTreeMap::new();
    for s in slos {
        by_file.entry(s.source.file.as_str()).or_default().push(s);
    }
    by_file
        .into_iter()
        .map(|(file, slos)| SpecFile {
            stem: Path::new(file)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("slo")
                .trim_end_matches(".openslo"),
            source: Path::new(file)
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or(file),
            slos,
        })
        .collect()
}

/// The stem of the budget alerts' files.
const COST_STEM: &str = "cost";

/// Writes `<stem>.rules.yml` and `<stem>.prometheusrule.yaml` per spec
/// file, and `cost.*` from `pricing`'s budgets. Everything is read and
/// checked before anything is written.
pub fn generate(
    specs: &[PathBuf],
    output: &Path,
    pricing: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    let slos = slo::catalog::load_paths(specs).map_err(|e| e.to_string())?;
    let budgets = match pricing {
        Some(path) => {
            if let Some(spec) = by_file(&slos).iter().find(|f| f.stem == COST_STEM) {
                return Err(format!(
                    "{}: a spec file named `{COST_STEM}` would be overwritten by the budget alerts of --pricing",
                    spec.source
                ));
            }
            Some((path, budget_groups(path)?))
        }
        None => None,
    };
    std::fs::create_dir_all(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut written = Vec::new();
    for SpecFile { stem, source, slos } in by_file(&slos) {
        let rules = output.join(format!("{stem}.rules.yml"));
        let resource = output.join(format!("{stem}.prometheusrule.yaml"));
        write(&rules, &slo::emit::rule_file(&slos, source))?;
        let name = format!("slo-{stem}");
        write(&resource, &slo::emit::prometheus_rule(&name, &slos, source))?;
        written.push(rules);
        written.push(resource);
    }
    if let Some((path, groups)) = budgets {
        let source = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let header = format!(
            "# Generated by `reliable slo generate --pricing` from {source}; do not edit: edit its budgets.\n"
        );
        let rules = output.join(format!("{COST_STEM}.rules.yml"));
        let resource = output.join(format!("{COST_STEM}.prometheusrule.yaml"));
        write(&rules, &slo::emit::groups_file(&header, &groups))?;
        let resource_text = slo::emit::groups_resource(&header, "cost-budgets", &groups);
        write(&resource, &resource_text)?;
        written.push(rules);
        written.push(resource);
    }
    Ok(written)
}

/// The pricing file's budget alerts, its budgets checked against the
/// platform's modules.
fn budget_groups(path: &Path) -> Result<Vec<slo::rules::RuleGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pricing = cost::Pricing::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    cost::budget_rules::check(&pricing, &crate::registry::names())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cost::budget_rules::groups(&pricing))
}

/// The kustomization of a dashboards directory; no namespace, so the
/// kustomization that includes it decides where Grafana's sidecar looks.
const KUSTOMIZATION: &str = "kustomization.yaml";

/// Writes `<stem>.dashboard.json` and `<stem>.dashboard.yaml` (its
/// ConfigMap) per spec file, and a `kustomization.yaml` listing the
/// ConfigMaps.
pub fn dashboards(specs: &[PathBuf], output: &Path) -> Result<Vec<PathBuf>, String> {
    let slos = slo::catalog::load_paths(specs).map_err(|e| e.to_string())?;
    let files = by_file(&slos);
    let mut stems: Vec<&str> = files.iter().map(|f| f.stem).collect();
    stems.sort_unstable();
    if let Some(twice) = stems.windows(2).find(|w| w[0] == w[1]) {
        // `a/x.yaml` and `b/x.yaml` would overwrite each other's output.
        return Err(format!(
            "two spec files are named `{}`: each dashboard is named after its file",
            twice[0]
        ));
    }
    std::fs::create_dir_all(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut written = Vec::new();
    let mut config_maps = Vec::new();
    for SpecFile { stem, source, slos } in files {
        let json = slo::dashboard::dashboard_json(stem, source, &slos);
        let json_path = output.join(format!("{stem}.dashboard.json"));
        let config_map = format!("{stem}.dashboard.yaml");
        let config_map_path = output.join(&config_map);
        write(&json_path, &json)?;
        write(
            &config_map_path,
            &slo::dashboard::config_map(stem, source, &json),
        )?;
        written.push(json_path);
        written.push(config_map_path);
        config_maps.push(config_map);
    }
    config_maps.sort();
    let mut kustomization = String::from(
        "# Generated by `reliable slo dashboards` (here: `reliable slo dashboards slo/ -o deploy/grafana`);\n\
         # do not edit: edit the SLO specs and run it again.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n",
    );
    for file in &config_maps {
        kustomization.push_str(&format!(
            "  - {file}
"
        ));
    }
    let path = output.join(KUSTOMIZATION);
    write(&path, &kustomization)?;
    written.push(path);
    Ok(written)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
