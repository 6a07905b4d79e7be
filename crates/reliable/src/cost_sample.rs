//! One sample of the process's own `/metrics` text for cost, and what
//! changed between two samples as 5-minute-bucket amounts.
//!
//! Read with [`slo::exposition::parse_line`], as the live SLO evaluator
//! and the console's traffic do: the numbers are those Prometheus would
//! scrape (docs/operations/cost.md lists the series). Counters that went
//! down were reset (the series restarted), so their increase is their
//! new value, never negative; gauges (memory) are integrated over the
//! interval, at the newer sample's value. The process's CPU is read from
//! its own clock ([`process_cpu_seconds`]): the exported counter has
//! whole seconds only.

use chrono::{DateTime, Utc};
use cost::measured::{Kind, Measured, TASK_PREFIX};
use slo::exposition::parse_line;
use std::collections::HashMap;

const ROUTE_CPU: &str = "reliable_cost_cpu_seconds_total";
const REQUESTS: &str = "http_server_request_duration_seconds_count";
const MEMORY: &str = "reliable_memory_bytes";
const PROCESS_CPU: &str = "process_cpu_seconds_total";
const RSS: &str = "process_resident_memory_bytes";
const PROCESS_START: &str = "process_start_time_seconds";
const TOKENS: &str = "llm_key_tokens_total";

/// The cost counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub at: Option<DateTime<Utc>>,
    /// `(module, route, model)` -> CPU seconds.
    route_cpu: HashMap<(String, String, String), f64>,
    /// `(module, route)` -> requests.
    requests: HashMap<(String, String), f64>,
    /// module -> bytes (a gauge).
    memory: HashMap<String, f64>,
    process_cpu: f64,
    rss: f64,
    /// When the process started (Unix seconds), if it says.
    pub process_start: Option<f64>,
    /// `(key, model, type)` -> tokens.
    tokens: HashMap<(String, String, String), f64>,
}

impl Snapshot {
    /// The counters in `text`, sampled at `at`.
    pub fn parse(at: DateTime<Utc>, text: &str) -> Self {
        let mut snapshot = Snapshot {
            at: Some(at),
            ..Snapshot::default()
        };
        for line in text.lines() {
            let Some(sample) = parse_line(line) else {
                continue;
            };
            if !sample.value.is_finite() {
                continue;
            }
            let label = |name: &str| -> String {
                sample
                    .labels
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let value = sample.value;
            match sample.name {
                ROUTE_CPU => {
                    let key = (label("module"), label("route"), label("model"));
                    *snapshot.route_cpu.entry(key).or_default() += value;
                }
                REQUESTS => {
                    let key = (label("service"), label("http_route"));
                    *snapshot.requests.entry(key).or_default() += value;
                }
                MEMORY => *snapshot.memory.entry(label("module")).or_default() += value,
                PROCESS_CPU => snapshot.process_cpu += value,
                RSS => snapshot.rss += value,
                PROCESS_START => snapshot.process_start = Some(value),
                TOKENS => {
                    let key = (
                        label("key"),
                        label("gen_ai_request_model"),
                        label("gen_ai_token_type"),
                    );
                    *snapshot.tokens.entry(key).or_default() += value;
                }
                _ => {}
            }
        }
        snapshot
    }

    /// The process's CPU read from its own clock instead of
    /// `process_cpu_seconds_total`, which is exported in whole seconds
    /// (the metrics facade's counters are integers): too coarse for a
    /// 10-second tick.
    pub fn with_process_cpu(mut self, seconds: f64) -> Self {
        self.process_cpu = seconds;
        self
    }

    /// An empty snapshot at `at`: every counter at 0 (the process's start).
    pub fn zero(at: DateTime<Utc>) -> Self {
        Snapshot {
            at: Some(at),
            ..Snapshot::default()
        }
    }
}

/// This process's CPU time (user and system, every thread), in seconds.
pub fn process_cpu_seconds() -> f64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// A counter's increase from `old` to `new`; a reset counts from zero.
fn increase(old: Option<f64>, new: f64) -> f64 {
    match old {
        Some(old) if new >= old => new - old,
        _ => new,
    }
}

/// What happened between `old` and `new`, as amounts of the bucket that
/// holds `new`'s time. Nothing when `new` is not later.
pub fn deltas(old: &Snapshot, new: &Snapshot) -> Vec<Measured> {
    let (Some(from), Some(to)) = (old.at, new.at) else {
        return Vec::new();
    };
    let seconds = (to - from).num_milliseconds() as f64 / 1000.0;
    if seconds <= 0.0 {
        return Vec::new();
    }
    let row = |kind| Measured::new(to, kind);
    let mut rows = vec![Measured {
        seconds,
        cpu_seconds: increase(Some(old.process_cpu), new.process_cpu),
        byte_seconds: new.rss * seconds,
        ..row(Kind::Process)
    }];
    for ((module, route, model), value) in &new.route_cpu {
        let key = (module.clone(), route.clone(), model.clone());
        let cpu = increase(old.route_cpu.get(&key).copied(), *value);
        if cpu > 0.0 {
            rows.push(Measured {
                module: module.clone(),
                route: route.clone(),
                model: model.clone(),
                cpu_seconds: cpu,
                ..row(Kind::Route)
            });
        }
    }
    for ((module, route), value) in &new.requests {
        // A task's route never serves requests; an HTTP route never
        // starts with `task:` (the contract), so nothing is mixed up.
        if route.starts_with(TASK_PREFIX) {
            continue;
        }
        let key = (module.clone(), route.clone());
        let requests = increase(old.requests.get(&key).copied(), *value);
        if requests > 0.0 {
            rows.push(Measured {
                module: module.clone(),
                route: route.clone(),
                requests,
                ..row(Kind::Route)
            });
        }
    }
    for (module, bytes) in &new.memory {
        if *bytes > 0.0 {
            rows.push(Measured {
                module: module.clone(),
                byte_seconds: bytes * seconds,
                ..row(Kind::Memory)
            });
        }
    }
    for ((key, model, kind), value) in &new.tokens {
        let tokens_key = (key.clone(), model.clone(), kind.clone());
        let tokens = increase(old.tokens.get(&tokens_key).copied(), *value);
        if tokens <= 0.0 {
            continue;
        }
        let mut line = Measured {
            key: key.clone(),
            model: model.clone(),
            ..row(Kind::Tokens)
        };
        match kind.as_str() {
            "input" => line.input_tokens = tokens,
            "output" => line.output_tokens = tokens,
            _ => continue,
        }
        rows.push(line);
    }
    cost::measured::merge(rows)
}
