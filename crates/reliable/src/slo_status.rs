//! `reliable slo status` and `reliable slo gate`: read the SLO report from
//! the local platform (its live evaluator) or from a Prometheus running
//! the generated rules, print it, or judge a release by the policy.

use clap::{Args, ValueEnum};
use slo::policy::{Policy, ReleaseKind};
use slo::rules;
use slo::status::{SloStatus, StatusReport, WindowBurn};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Where the report comes from.
#[derive(Debug, Args)]
pub struct Source {
    /// Read a Prometheus that runs the generated rules (its HTTP API).
    #[arg(long, conflicts_with = "url")]
    prometheus: Option<url::Url>,
    /// The local platform's address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "RELIABLE_URL")]
    url: url::Url,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    source: Source,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    #[command(flatten)]
    source: Source,
    /// A report saved with `status --format json` instead of a live source.
    #[arg(long, conflicts_with = "prometheus")]
    status_file: Option<PathBuf>,
    /// Policy file; without it the default table (50% / 20% / 10%).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Only these SLO ids (repeatable); default: all.
    #[arg(long = "slo")]
    slos: Vec<String>,
    /// Only SLOs of this service (repeatable).
    #[arg(long = "service")]
    services: Vec<String>,
    /// What is being released.
    #[arg(long, default_value = "feature", value_parser = ReleaseKind::parse)]
    kind: ReleaseKind,
    /// Let SLOs without data pass instead of blocking.
    #[arg(long)]
    allow_missing: bool,
}

pub fn status(args: StatusArgs) -> ExitCode {
    match fetch(&args.source) {
        Ok(report) => {
            let text = match args.format {
                Format::Text => report.to_string(),
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(json) => json + "\n",
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

pub fn gate(args: GateArgs) -> ExitCode {
    let policy = match &args.policy {
        None => Policy::default(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                Policy::parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
            }) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let report = match &args.status_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(anyhow::Error::from)
            .and_then(|t| serde_json::from_str::<StatusReport>(&t).map_err(anyhow::Error::from))
            .map_err(|e| e.context(format!("reading {}", path.display()))),
        None => fetch(&args.source),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let selected: Vec<SloStatus> = report
        .slos
        .into_iter()
        .filter(|s| args.slos.is_empty() || args.slos.contains(&s.id))
        .filter(|s| args.services.is_empty() || args.services.contains(&s.service))
        .collect();
    if selected.is_empty() {
        eprintln!("error: no SLO matches the --slo / --service filters");
        return ExitCode::from(2);
    }
    let verdict = policy.decide(&selected, args.kind, args.allow_missing);
    if verdict.allowed {
        println!("allowed ({}): {}", verdict.decision, verdict.reason);
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "blocked ({}): {} [{} release]",
            verdict.decision, verdict.reason, args.kind
        );
        ExitCode::FAILURE
    }
}

fn fetch(source: &Source) -> anyhow::Result<StatusReport> {
    let runtime = crate::runtime().ok_or_else(|| anyhow::anyhow!("no async runtime"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        match &source.prometheus {
            Some(url) => from_prometheus(&client, url).await,
            None => {
                let url = source.url.join(crate::slo_live::STATUS_PATH)?;
                let response = client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{url}: {e} (is `reliable up` running?)"))?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "{url}: HTTP {}",
                    response.status()
                );
                Ok(response.json().await?)
            }
        }
    })
}

/// One instant-vector query: (labels, value) per series. The answer is
/// read by the same parser as `reliable cost`'s queries.
async fn query(
    client: &reqwest::Client,
    base: &url::Url,
    promql: &str,
) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
    let mut url = base.join("api/v1/query")?;
    url.query_pairs_mut().append_pair("query", promql);
    let body = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
        .bytes()
        .await?;
    let samples = cost::prometheus::parse_vector(&body)
        .map_err(|e| anyhow::anyhow!("{url}: {promql}: {e}"))?;
    Ok(samples.into_iter().map(|s| (s.labels, s.value)).collect())
}

/// Builds the report from the generated rules' recorded series.
async fn from_prometheus(
    client: &reqwest::Client,
    base: &url::Url,
) -> anyhow::Result<StatusReport> {
    let by_id = |rows: Vec<(BTreeMap<String, String>, f64)>| -> BTreeMap<String, f64> {
        rows.into_iter()
            .filter_map(|(l, v)| l.get("slo_id").map(|id| (id.clone(), v)))
            .collect()
    };
    let objectives = query(client, base, rules::OBJECTIVE).await?;
    let periods = by_id(query(client, base, rules::PERIOD_SECONDS).await?);
    let period_errors = by_id(query(client, base, rules::PERIOD_ERROR_RATIO).await?);
    let mut windows = Vec::new();
    for w in slo::burn::ALERT_WINDOWS {
        windows.push((
            w.to_string(),
            by_id(query(client, base, &rules::ratio_metric(w)).await?),
        ));
    }
    let mut firing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (labels, _) in query(client, base, "ALERTS{alertstate=\"firing\",slo_id!=\"\"}").await? {
        let Some(id) = labels.get("slo_id") else {
            continue;
        };
        let what = if labels.get("alertname").map(String::as_str) == Some(rules::ABSENT_ALERT) {
            "absent".to_string()
        } else {
            labels
                .get("slo_severity")
                .cloned()
                .unwrap_or_else(|| "unknown".into())
        };
        firing.entry(id.clone()).or_default().push(what);
    }
    let mut slos = Vec::new();
    for (labels, objective) in objectives {
        let Some(id) = labels.get("slo_id").cloned() else {
            continue;
        };
        let budget = 1.0 - objective;
        let period_seconds = periods.get(&id).copied().unwrap_or(0.0) as u64;
        let error = period_errors.get(&id).copied();
        let remaining = error.map(|e| 1.0 - e / budget);
        let mut f = firing.remove(&id).unwrap_or_default();
        f.sort_by_key(|a| {
            ["page", "ticket", "absent"]
                .iter()
                .position(|x| x == a)
                .unwrap_or(3)
        });
        f.dedup();
        slos.push(SloStatus {
            service: labels.get("slo_service").cloned().unwrap_or_default(),
            name: labels.get("slo_name").cloned().unwrap_or_default(),
            objective,
            period_seconds,
            sli: error.map(|e| 1.0 - e),
            budget_remaining: remaining,
            budget_remaining_seconds: remaining
                .map(|r| SloStatus::remaining_seconds(objective, period_seconds, r)),
            burn_rates: windows
                .iter()
                .map(|(w, values)| WindowBurn {
                    window: w.clone(),
                    burn_rate: values.get(&id).map(|r| r / budget),
                })
                .collect(),
            firing: f,
            id,
        });
    }
    slos.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(StatusReport {
        source: base.to_string(),
        slos,
    })
}
