//! `reliable cost`: what each module, route, model, key, pod or namespace
//! cost over a window, by OpenCost's allocation rules (the `cost` crate),
//! from a running platform's own measurement (`--url`, the default:
//! `GET /api/v1/cost/allocation`, [`crate::cost_url`]) or from a
//! Prometheus that scrapes cAdvisor, kube-state-metrics and the modules
//! (`--prometheus`). docs/operations/cost.md has the model and the
//! queries.

use clap::{Args, ValueEnum};
use cost::prometheus::{self, Measure, Sample};
use cost::{AllocationSet, IdleOptions, Pricing, Window};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct CostArgs {
    /// A running platform (`reliable up` or `serve`): its address. Default:
    /// RELIABLE_URL, then http://127.0.0.1:8080. The key it sends, which
    /// needs the `cost:read` scope, comes from RELIABLE_API_KEY.
    #[arg(long, conflicts_with = "prometheus")]
    pub(crate) url: Option<url::Url>,
    /// A Prometheus that scrapes cAdvisor, kube-state-metrics and the
    /// modules (its HTTP API base, e.g. http://prometheus:9090).
    #[arg(long)]
    prometheus: Option<url::Url>,
    /// The window, as OpenCost's `window`: 30m, 24h, 7d, today, yesterday,
    /// week, month, lastweek, lastmonth, or two RFC 3339 times or Unix
    /// seconds separated by a comma.
    #[arg(long, default_value = "7d")]
    pub(crate) window: String,
    /// What to group by. `key` and `model`: the LLM gateway's spend per API
    /// key and model (from Prometheus, its tokens; from a platform, also
    /// inference model versions by CPU). `namespace`, `pod` and
    /// `container`: Prometheus only.
    #[arg(long, value_enum, default_value = "module")]
    pub(crate) aggregate: Aggregate,
    /// The pricing file for `--prometheus` (see cost.example.yaml); default
    /// cost.yaml. A platform prices with its own `cost.pricing`.
    #[arg(long, conflicts_with = "url")]
    pricing: Option<PathBuf>,
    /// Spread idle cost over the lines in proportion to their cost,
    /// instead of an `__idle__` line.
    #[arg(long)]
    pub(crate) share_idle: bool,
    /// Print JSON (OpenCost's allocation fields) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The properties a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Aggregate {
    Module,
    Route,
    Model,
    Key,
    Namespace,
    Pod,
    Container,
}

impl Aggregate {
    pub(crate) fn property(self) -> &'static str {
        match self {
            Aggregate::Module => "module",
            Aggregate::Route => "route",
            Aggregate::Model => "model",
            Aggregate::Key => "key",
            Aggregate::Namespace => "namespace",
            Aggregate::Pod => "pod",
            Aggregate::Container => "container",
        }
    }
}

/// What stopped the report, and its exit code.
pub(crate) enum Failure {
    /// What the operator gave (exit 2).
    Input(String),
    /// What failed underneath (exit 1).
    Source(String),
}

pub fn run(args: CostArgs) -> ExitCode {
    let result = match &args.prometheus {
        Some(prometheus) => report(&args, prometheus),
        None => crate::cost_url::report(&args),
    };
    match result {
        Ok(text) => {
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Source(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn report(args: &CostArgs, base: &url::Url) -> Result<String, Failure> {
    let path = args
        .pricing
        .clone()
        .unwrap_or_else(|| PathBuf::from("cost.yaml"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let pricing =
        Pricing::parse(&text).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let window = Window::parse(&args.window, chrono::Utc::now())
        .map_err(|e| Failure::Input(e.to_string()))?;
    if matches!(args.aggregate, Aggregate::Key | Aggregate::Model) {
        return key_report(args, base, &path, &pricing, &window);
    }
    let answers = fetch(base, &window, prometheus::queries(&window))?;
    let usages = if args.aggregate == Aggregate::Route {
        prometheus::route_usages(&answers, &window)
    } else {
        prometheus::container_usages(&answers, &window)
    };
    let idle = IdleOptions {
        include_idle: true,
        share_idle: args.share_idle,
    };
    let set = cost::allocate(&pricing, &window, &usages, idle).aggregate(args.aggregate.property());
    let report = Report {
        set: &set,
        window: &window,
        by: args.aggregate.property(),
        currency: pricing.currency.as_str(),
        hours: window.hours(),
        note: None,
    };
    render(&report, args.json)
}

/// A priced set and how to present it.
pub(crate) struct Report<'a> {
    pub set: &'a AllocationSet,
    pub window: &'a Window,
    pub by: &'a str,
    pub currency: &'a str,
    /// The hours the 30-day projection extrapolates from.
    pub hours: f64,
    /// A line to print under the table (example prices).
    pub note: Option<&'a str>,
}

/// The table, or JSON with `json`.
pub(crate) fn render(report: &Report<'_>, json: bool) -> Result<String, Failure> {
    if json {
        let mut json = serde_json::json!({
            "window": {"start": report.window.start.to_rfc3339(), "end": report.window.end.to_rfc3339()},
            "currency": report.currency,
            "aggregate": report.by,
            "allocations": report.set,
            "totalCost": report.set.total_cost(),
            "projectedMonthCost": cost::project_month(report.set.total_cost(), report.hours),
        });
        if let Some(note) = report.note {
            json["note"] = serde_json::Value::from(note);
        }
        return serde_json::to_string_pretty(&json)
            .map(|text| text + "\n")
            .map_err(|e| Failure::Source(e.to_string()));
    }
    Ok(table(report))
}

/// LLM spend per key or model from Prometheus: the table (or JSON) of
/// the allocation, the keys' budgets and what had no price.
fn key_report(
    args: &CostArgs,
    base: &url::Url,
    pricing_path: &std::path::Path,
    pricing: &Pricing,
    window: &Window,
) -> Result<String, Failure> {
    let query = prometheus::tokens::query(window);
    let measure = query.measure;
    let answers = fetch(base, window, vec![query])?;
    let samples = answers.get(&measure).map_or(&[][..], Vec::as_slice);
    let by = args.aggregate.property();
    let spend = prometheus::tokens::key_spend(pricing, window, samples, by);
    let set = &spend.set;
    let currency = pricing.currency.as_str();
    if args.json {
        let json = serde_json::json!({
            "window": {"start": window.start.to_rfc3339(), "end": window.end.to_rfc3339()},
            "currency": currency,
            "aggregate": by,
            "allocations": set,
            "totalCost": set.total_cost(),
            "projectedMonthCost": cost::project_month(set.total_cost(), window.hours()),
            "spend": spend.lines,
            "budgets": spend.budgets,
        });
        return serde_json::to_string_pretty(&json)
            .map(|text| text + "\n")
            .map_err(|e| Failure::Source(e.to_string()));
    }
    let mut out = table(&Report {
        set,
        window,
        by,
        currency,
        hours: window.hours(),
        note: None,
    });
    for budget in &spend.budgets {
        let _ = writeln!(
            out,
            "budget of key {}: {:.2} {currency} a month, projected {:.2}{}",
            budget.name,
            budget.budget,
            budget.projected_month,
            if budget.over { " (over)" } else { "" }
        );
    }
    // spend() orders its lines by model: one name each after dedup.
    let mut unpriced: Vec<&str> = spend
        .lines
        .iter()
        .filter(|l| l.basis == cost::SpendBasis::Unpriced)
        .map(|l| l.model.as_str())
        .collect();
    unpriced.dedup();
    if !unpriced.is_empty() {
        let _ = writeln!(
            out,
            "unpriced (no price in {}, counted at 0): {}",
            pricing_path.display(),
            unpriced.join(", ")
        );
    }
    Ok(out)
}

/// The client both sources are read with (30 s per answer).
pub(crate) fn http_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Failure::Source(e.to_string()))
}

/// Sends `queries`, each evaluated at the window's end.
fn fetch(
    base: &url::Url,
    window: &Window,
    queries: Vec<prometheus::Query>,
) -> Result<HashMap<Measure, Vec<Sample>>, Failure> {
    let runtime =
        crate::runtime().ok_or_else(|| Failure::Source("no async runtime".to_string()))?;
    runtime.block_on(async {
        let client = http_client()?;
        let mut answers = HashMap::new();
        for query in queries {
            let mut url = base
                .join("api/v1/query")
                .map_err(|e| Failure::Input(format!("--prometheus {base}: {e}")))?;
            url.query_pairs_mut()
                .append_pair("query", &query.promql)
                .append_pair("time", &window.end.timestamp().to_string());
            let response = client.get(url).send().await.map_err(|e| {
                Failure::Source(format!("Prometheus at {base} did not answer: {e}"))
            })?;
            let body = response
                .bytes()
                .await
                .map_err(|e| Failure::Source(format!("Prometheus at {base}: {e}")))?;
            let samples = prometheus::parse_vector(&body)
                .map_err(|e| Failure::Source(format!("{base}: {e} (query: {})", query.promql)))?;
            answers.insert(query.measure, samples);
        }
        Ok(answers)
    })
}

fn table(report: &Report<'_>) -> String {
    let Report {
        set,
        window,
        by,
        currency,
        hours,
        note,
    } = *report;
    let total = set.total_cost();
    let mut lines: Vec<_> = set.allocations.values().collect();
    lines.sort_by(|a, b| b.total_cost.total_cmp(&a.total_cost));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cost by {by}, {} to {} ({:.1} h), {currency}",
        window.start.to_rfc3339(),
        window.end.to_rfc3339(),
        window.hours()
    );
    let _ = writeln!(
        out,
        "{:<40} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>11}",
        by.to_uppercase(),
        "CPU CORE-H",
        "RAM GIB-H",
        "CPU",
        "RAM",
        "OTHER",
        "TOTAL",
        "SHARE",
        "PER 1K REQ"
    );
    for line in lines {
        let share = if total > 0.0 {
            line.total_cost / total * 100.0
        } else {
            0.0
        };
        let per_1k = line
            .cost_per_1k_requests
            .map_or_else(|| "-".to_string(), |c| figure(c, 6));
        let _ = writeln!(
            out,
            "{:<40} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6.1}% {:>11}",
            line.name,
            figure(line.cpu_core_hours, 2),
            figure(line.ram_byte_hours / (1u64 << 30) as f64, 2),
            figure(line.cpu_cost, 4),
            figure(line.ram_cost, 4),
            figure(line.gpu_cost + line.external_cost + line.shared_cost, 4),
            figure(line.total_cost, 4),
            share,
            per_1k
        );
    }
    let _ = writeln!(out, "{:<40} {:>76}", "total", figure(total, 4));
    let _ = writeln!(
        out,
        "30-day projection: {:.2} {currency}",
        cost::project_month(total, hours)
    );
    if let Some(note) = note {
        let _ = writeln!(out, "{note}");
    }
    out
}

/// `value` with `decimals` places, or in scientific notation when those
/// would show only zeros (a platform measured for minutes costs
/// millionths).
fn figure(value: f64, decimals: usize) -> String {
    let smallest = 10f64.powi(-i32::try_from(decimals).unwrap_or(i32::MAX));
    if value == 0.0 || value.abs() >= smallest {
        format!("{value:.decimals$}")
    } else {
        format!("{value:.2e}")
    }
}
