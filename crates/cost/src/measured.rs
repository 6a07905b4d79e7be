//! What `reliable up` and `serve` measure of themselves, priced by
//! OpenCost's rules (docs/operations/cost.md, "What the platform measures
//! by itself").
//!
//! The binary samples its own `/metrics` and folds the increases into
//! 5-minute buckets of [`Measured`] amounts (one per module, route, model
//! and key); this module turns the buckets of a window into
//! [`AllocationSet`]s, one per step. The attribution rule:
//!
//! - a route's CPU is what `reliable_cost_cpu_seconds_total` measured for
//!   it, plus its share of the process's **protocol overhead** (process
//!   CPU − request CPU − task CPU: what no connection, request or task
//!   poll holds, the runtime's scheduling and its threads' wake-ups),
//!   priced into `sharedCost`, never silently into `cpuCost`. The share
//!   is in proportion to the route's measured CPU, because that overhead
//!   grows with the work, not with the request count: measured with
//!   `scripts/bench-cost-attribution`, an inference batch left 197 us
//!   unmeasured where a redirect left 13 us, the same 15:1 as their
//!   measured CPU (docs/operations/cost.md, "Attribution, checked").
//!   With no CPU measured on any route (sampling off) it is split by
//!   request count; with no request at all it is the `__unallocated__`
//!   line;
//! - requests of a route whose CPU is measured per model version (the
//!   request counter has no model label) are split between the versions
//!   in proportion to their CPU;
//! - a module's memory is `reliable_memory_bytes`; RSS minus every
//!   module's is the `__shared__` line;
//! - idle is the capacity (`capacity_cores` × the time the platform ran
//!   in the step) minus the process's CPU, a line or shared by CPU cost;
//! - LLM tokens per key and model are the llm module's external cost
//!   ([`crate::tokens::spend`]).
//!
//! Prices are the pricing file's resource prices (the process runs on no
//! named node type here).

use crate::allocation::{allocate, finish, AllocationSet, IdleOptions, Usage, IDLE, UNALLOCATED};
use crate::pricing::Pricing;
use crate::tokens::{spend, TokenUsage};
use crate::window::{Window, WindowError};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

mod view;
pub use view::{view, CostView, LineCost, StepCost};

/// The length of a bucket.
pub const BUCKET_SECONDS: i64 = 300;
/// RSS that no module accounts for.
pub const SHARED: &str = "__shared__";
/// The route prefix of a module's background tasks' CPU.
pub const TASK_PREFIX: &str = "task:";
/// The most steps one query may ask for.
pub const MAX_STEPS: usize = 2_000;

/// What a [`Measured`] amount is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// CPU seconds and requests of `(module, route, model)`.
    Route,
    /// Byte-seconds of a module's measured memory.
    Memory,
    /// The process: CPU seconds, RSS byte-seconds and seconds observed.
    Process,
    /// Input and output tokens of `(key, model)`.
    Tokens,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Route, Kind::Memory, Kind::Process, Kind::Tokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Route => "route",
            Kind::Memory => "memory",
            Kind::Process => "process",
            Kind::Tokens => "tokens",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One amount measured in one bucket: the stored row. Labels that do not
/// apply to its kind are empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The bucket's start (a multiple of [`BUCKET_SECONDS`]).
    pub bucket: DateTime<Utc>,
    pub kind: Kind,
    pub module: String,
    pub route: String,
    pub model: String,
    pub key: String,
    pub cpu_seconds: f64,
    pub requests: f64,
    pub byte_seconds: f64,
    /// Seconds the process was observed (kind `Process`).
    pub seconds: f64,
    pub input_tokens: f64,
    pub output_tokens: f64,
}

/// What identifies a row: its bucket, kind and labels.
pub type RowKey = (i64, Kind, String, String, String, String);

impl Measured {
    /// An empty amount of `kind` at the bucket holding `at`.
    pub fn new(at: DateTime<Utc>, kind: Kind) -> Self {
        Measured {
            bucket: bucket_of(at),
            kind,
            module: String::new(),
            route: String::new(),
            model: String::new(),
            key: String::new(),
            cpu_seconds: 0.0,
            requests: 0.0,
            byte_seconds: 0.0,
            seconds: 0.0,
            input_tokens: 0.0,
            output_tokens: 0.0,
        }
    }

    pub fn key(&self) -> RowKey {
        (
            self.bucket.timestamp(),
            self.kind,
            self.module.clone(),
            self.route.clone(),
            self.model.clone(),
            self.key.clone(),
        )
    }

    /// Adds `other`'s amounts (same key) into this one.
    pub fn add(&mut self, other: &Measured) {
        self.cpu_seconds += other.cpu_seconds;
        self.requests += other.requests;
        self.byte_seconds += other.byte_seconds;
        self.seconds += other.seconds;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// The start of the bucket holding `at`.
pub fn bucket_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let start = at.timestamp().div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS;
    DateTime::from_timestamp(start, 0).unwrap_or(at)
}

/// Rows with the same key summed into one.
pub fn merge(rows: impl IntoIterator<Item = Measured>) -> Vec<Measured> {
    let mut merged: BTreeMap<RowKey, Measured> = BTreeMap::new();
    for row in rows {
        match merged.get_mut(&row.key()) {
            Some(existing) => existing.add(&row),
            None => {
                merged.insert(row.key(), row);
            }
        }
    }
    merged.into_values().collect()
}

/// How a measured window is priced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The cores the process may use: the capacity idle is measured against.
    pub capacity_cores: f64,
    pub idle: IdleOptions,
}

/// One allocation set per step of `window` (the whole window without a
/// step) from the buckets `rows` that start within it.
pub fn allocate_measured(
    pricing: &Pricing,
    window: &Window,
    step: Option<Duration>,
    rows: &[Measured],
    options: Options,
) -> Result<Vec<AllocationSet>, WindowError> {
    let steps = window.steps(step, MAX_STEPS)?;
    Ok(steps
        .iter()
        .map(|step| {
            let inside: Vec<&Measured> = rows
                .iter()
                .filter(|r| r.bucket >= step.start && r.bucket < step.end)
                .collect();
            allocate_step(pricing, step, &inside, options)
        })
        .collect())
}

/// A route's line before pricing.
#[derive(Default)]
struct RouteUse {
    cpu_seconds: f64,
    requests: f64,
}

fn allocate_step(
    pricing: &Pricing,
    step: &Window,
    rows: &[&Measured],
    options: Options,
) -> AllocationSet {
    let sum = |kind: Kind, f: fn(&Measured) -> f64| -> f64 {
        rows.iter().filter(|r| r.kind == kind).map(|r| f(r)).sum()
    };
    let seconds = sum(Kind::Process, |r| r.seconds);
    let process_cpu = sum(Kind::Process, |r| r.cpu_seconds);
    let rss_byte_seconds = sum(Kind::Process, |r| r.byte_seconds);
    let minutes = seconds / 60.0;
    let average = |amount: f64| if seconds > 0.0 { amount / seconds } else { 0.0 };

    let routes = route_uses(rows);
    let measured_cpu: f64 = routes.values().map(|r| r.cpu_seconds).sum();
    let overhead = (process_cpu - measured_cpu).max(0.0);
    let requests: f64 = routes.values().map(|r| r.requests).sum();
    // The CPU of the lines that served requests: the overhead's weights.
    let serving_cpu: f64 = routes
        .values()
        .filter(|r| r.requests > 0.0)
        .map(|r| r.cpu_seconds)
        .sum();

    let mut usages = Vec::new();
    let mut shared_cpu: BTreeMap<String, f64> = BTreeMap::new();
    for ((module, route, model), line) in &routes {
        let mut properties = BTreeMap::from([
            ("module".to_string(), module.clone()),
            ("route".to_string(), route.clone()),
        ]);
        let name = if model.is_empty() {
            format!("{module} {route}")
        } else {
            properties.insert("model".to_string(), model.clone());
            format!("{module} {route} {model}")
        };
        if line.requests > 0.0 {
            let weight = if serving_cpu > 0.0 {
                line.cpu_seconds / serving_cpu
            } else {
                line.requests / requests
            };
            shared_cpu.insert(name.clone(), overhead * weight);
        }
        usages.push(Usage {
            name,
            properties,
            minutes,
            cpu_core_usage_average: average(line.cpu_seconds),
            requests: line.requests.round() as u64,
            ..Usage::default()
        });
    }
    if requests <= 0.0 && overhead > 0.0 {
        usages.push(Usage {
            name: UNALLOCATED.to_string(),
            minutes,
            cpu_core_usage_average: average(overhead),
            ..Usage::default()
        });
    }
    let mut memory: BTreeMap<&str, f64> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.kind == Kind::Memory) {
        *memory.entry(row.module.as_str()).or_default() += row.byte_seconds;
    }
    let module_memory: f64 = memory.values().sum();
    for (module, byte_seconds) in memory {
        usages.push(Usage {
            name: format!("{module} memory"),
            properties: BTreeMap::from([("module".to_string(), module.to_string())]),
            minutes,
            ram_byte_usage_average: average(byte_seconds),
            ..Usage::default()
        });
    }
    let shared_memory = (rss_byte_seconds - module_memory).max(0.0);
    if shared_memory > 0.0 {
        usages.push(Usage {
            name: SHARED.to_string(),
            properties: BTreeMap::from([("module".to_string(), SHARED.to_string())]),
            minutes,
            ram_byte_usage_average: average(shared_memory),
            ..Usage::default()
        });
    }
    for line in spend(
        pricing,
        &token_usages(rows.iter().copied()),
        seconds / 3600.0,
    ) {
        usages.push(line.usage(minutes));
    }

    // Idle is measured against the process's capacity below, not the
    // pricing file's nodes (those are a cluster's).
    let mut resource_prices = pricing.clone();
    resource_prices.nodes.clear();
    let no_idle = IdleOptions {
        include_idle: false,
        share_idle: false,
    };
    let mut set = allocate(&resource_prices, step, &usages, no_idle);
    let rate = pricing.default_rates().cpu_core_hour;
    for (name, core_seconds) in shared_cpu {
        if let Some(allocation) = set.allocations.get_mut(&name) {
            allocation.shared_cost = core_seconds / 3600.0 * rate;
            finish(allocation);
        }
    }
    if options.idle.include_idle {
        let idle_core_hours = ((options.capacity_cores * seconds - process_cpu) / 3600.0).max(0.0);
        add_idle(
            &mut set,
            idle_core_hours,
            rate,
            options.idle.share_idle,
            minutes,
        );
    }
    set
}

/// Route rows summed by `(module, route, model)`, with the requests of a
/// route measured per model version split by CPU.
fn route_uses(rows: &[&Measured]) -> BTreeMap<(String, String, String), RouteUse> {
    let mut routes: BTreeMap<(String, String, String), RouteUse> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.kind == Kind::Route) {
        let line = routes
            .entry((row.module.clone(), row.route.clone(), row.model.clone()))
            .or_default();
        line.cpu_seconds += row.cpu_seconds;
        line.requests += row.requests;
    }
    let unlabelled: Vec<(String, String)> = routes
        .iter()
        .filter(|((_, _, model), line)| model.is_empty() && line.cpu_seconds <= 0.0)
        .map(|((module, route, _), _)| (module.clone(), route.clone()))
        .collect();
    for (module, route) in unlabelled {
        let same = |k: &(String, String, String)| k.0 == module && k.1 == route && !k.2.is_empty();
        let model_cpu: f64 = routes
            .iter()
            .filter(|(k, _)| same(k))
            .map(|(_, l)| l.cpu_seconds)
            .sum();
        if model_cpu <= 0.0 {
            continue;
        }
        let Some(requests) = routes
            .remove(&(module.clone(), route.clone(), String::new()))
            .map(|l| l.requests)
        else {
            continue;
        };
        for (_, line) in routes.iter_mut().filter(|(k, _)| same(k)) {
            line.requests += requests * line.cpu_seconds / model_cpu;
        }
    }
    routes
}

/// Idle CPU as its own line, or spread over the lines by their CPU cost
/// (measured and shared).
fn add_idle(set: &mut AllocationSet, core_hours: f64, rate: f64, share: bool, minutes: f64) {
    let cost = core_hours * rate;
    if share {
        let cpu = |a: &crate::Allocation| a.cpu_cost + a.shared_cost;
        let whole: f64 = set.allocations.values().map(cpu).sum();
        if whole <= 0.0 {
            return;
        }
        for allocation in set.allocations.values_mut() {
            allocation.cpu_cost_idle = cost * cpu(allocation) / whole;
            allocation.cpu_cost += allocation.cpu_cost_idle;
            finish(allocation);
        }
        return;
    }
    let window = set
        .allocations
        .values()
        .next()
        .map(|a| a.window.clone())
        .unwrap_or_else(|| crate::allocation::WindowJson {
            start: set.window.start.to_rfc3339(),
            end: set.window.end.to_rfc3339(),
        });
    let mut line = crate::Allocation {
        name: IDLE.to_string(),
        start: window.start.clone(),
        end: window.end.clone(),
        window,
        minutes,
        cpu_core_hours: core_hours,
        cpu_cost: cost,
        ..crate::Allocation::default()
    };
    finish(&mut line);
    set.allocations.insert(IDLE.to_string(), line);
}

/// The token rows of `rows`, as the LLM spend arithmetic takes them.
pub(crate) fn token_usages<'a>(rows: impl IntoIterator<Item = &'a Measured>) -> Vec<TokenUsage> {
    rows.into_iter()
        .filter(|r| r.kind == Kind::Tokens)
        .map(|r| TokenUsage {
            key: r.key.clone(),
            model: r.model.clone(),
            prompt_tokens: r.input_tokens.round() as u64,
            completion_tokens: r.output_tokens.round() as u64,
            requests: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests;
