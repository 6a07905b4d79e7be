//! `reliable cost`: what each module, route, pod or namespace cost over a
//! window, by OpenCost's allocation rules (the `cost` crate), from a
//! Prometheus that scrapes cAdvisor, kube-state-metrics and the modules.
//! docs/operations/cost.md has the model and the queries.
//! `--aggregate key|model` prices the LLM gateway's tokens per API key
//! instead (`cost::prometheus::tokens`), with the keys' budgets.

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
    /// A Prometheus that scrapes cAdvisor, kube-state-metrics and the
    /// modules (its HTTP API base, e.g. http://prometheus:9090).
    #[arg(long, required = true)]
    prometheus: url::Url,
    /// The window, as OpenCost's `window`: 30m, 24h, 7d, today, yesterday,
    /// week, month, lastweek, lastmonth, or two RFC 3339 times or Unix
    /// seconds separated by a comma.
    #[arg(long, default_value = "7d")]
    window: String,
    /// What to group by: `key` and `model` are the LLM gateway's spend
    /// per API key and per model, from its tokens.
    #[arg(long, value_enum, default_value = "module")]
    aggregate: Aggregate,
    /// The pricing file (see cost.example.yaml).
    #[arg(long, default_value = "cost.yaml")]
    pricing: PathBuf,
    /// Spread idle cost over the lines in proportion to their cost,
    /// instead of an `__idle__` line.
    #[arg(long)]
    share_idle: bool,
    /// Print JSON (OpenCost's allocation fields) instead of a table.
    #[arg(long)]
    json: bool,
}

/// The properties a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Aggregate {
    Module,
    Route,
    Namespace,
    Pod,
    Container,
    /// LLM spend per API key.
    Key,
    /// LLM spend per model.
    Model,
}

impl Aggregate {
    fn property(self) -> &'static str {
        match self {
            Aggregate::Module => "module",
            Aggregate::Route => "route",
            Aggregate::Namespace => "namespace",
            Aggregate::Pod => "pod",
            Aggregate::Container => "container",
            Aggregate::Key => "key",
            Aggregate::Model => "model",
        }
    }
}

/// What stopped the report, and its exit code.
enum Failure {
    /// What the operator gave (exit 2).
    Input(String),
    /// What failed underneath (exit 1).
    Source(String),
}

pub fn run(args: CostArgs) -> ExitCode {
    match report(&args) {
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

fn report(args: &CostArgs) -> Result<String, Failure> {
    let text = std::fs::read_to_string(&args.pricing)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.pricing.display())))?;
    let pricing = Pricing::parse(&text)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.pricing.display())))?;
    let window = Window::parse(&args.window, chrono::Utc::now())
        .map_err(|e| Failure::Input(e.to_string()))?;
    if matches!(args.aggregate, Aggregate::Key | Aggregate::Model) {
        return key_report(args, &pricing, &window);
    }
    let answers = fetch(&args.prometheus, &window, prometheus::queries(&window))?;
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
    if args.json {
        let json = serde_json::json!({
            "window": {"start": window.start.to_rfc3339(), "end": window.end.to_rfc3339()},
            "currency": pricing.currency.as_str(),
            "aggregate": args.aggregate.property(),
            "allocations": set,
            "totalCost": set.total_cost(),
            "projectedMonthCost": cost::project_month(set.total_cost(), window.hours()),
        });
        return serde_json::to_string_pretty(&json)
            .map(|text| text + "\n")
            .map_err(|e| Failure::Source(e.to_string()));
    }
    Ok(table(
        &set,
        &window,
        args.aggregate.property(),
        pricing.currency.as_str(),
    ))
}

/// LLM spend per key or model: the table (or JSON) of the allocation,
/// the keys' budgets and what had no price.
fn key_report(args: &CostArgs, pricing: &Pricing, window: &Window) -> Result<String, Failure> {
    let query = prometheus::tokens::query(window);
    let measure = query.measure;
    let answers = fetch(&args.prometheus, window, vec![query])?;
    let samples = answers.get(&measure).map_or(&[][..], Vec::as_slice);
    let by = args.aggregate.property();
    let spend = prometheus::tokens::key_spend(pricing, window, samples, by);
    let set = &spend.set;
    if args.json {
        let json = serde_json::json!({
            "window": {"start": window.start.to_rfc3339(), "end": window.end.to_rfc3339()},
            "currency": pricing.currency.as_str(),
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
    let currency = pricing.currency.as_str();
    let mut out = table(set, window, by, currency);
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
            args.pricing.display(),
            unpriced.join(", ")
        );
    }
    Ok(out)
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
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Failure::Source(e.to_string()))?;
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

fn table(set: &AllocationSet, window: &Window, by: &str, currency: &str) -> String {
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
            .map_or_else(|| "-".to_string(), |c| format!("{c:.6}"));
        let _ = writeln!(
            out,
            "{:<40} {:>10.2} {:>10.2} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>6.1}% {:>11}",
            line.name,
            line.cpu_core_hours,
            line.ram_byte_hours / (1u64 << 30) as f64,
            line.cpu_cost,
            line.ram_cost,
            line.gpu_cost + line.external_cost + line.shared_cost,
            line.total_cost,
            share,
            per_1k
        );
    }
    let _ = writeln!(out, "{:<40} {:>76.4}", "total", total);
    let _ = writeln!(
        out,
        "30-day projection: {:.2} {currency}",
        cost::project_month(total, window.hours())
    );
    out
}
