//! A scenario file after validation: what the engine runs.
//!
//! `scenario::compile` turns a YAML file into a [`Plan`]; the legacy
//! `--url` flags build a one-request plan. Everything here is already
//! checked (rates positive and finite, weights not all zero, every
//! placeholder bound to a pool that exists, durations non-zero), so the
//! engine never meets a value it has to refuse.

use crate::scenario::{Capture, Check, Template};
use crate::threshold::Threshold;
use http::{HeaderName, Method};
use std::time::Duration;

/// Index of a pool in [`Plan::pools`].
pub type PoolId = usize;

#[derive(Debug, Clone)]
pub struct Plan {
    /// Named lists of values filled by captures and read by placeholders.
    pub pools: Vec<PoolSpec>,
    /// Runs first, to completion, before any scenario starts.
    pub setup: Vec<SetupStep>,
    /// Run with their own start offsets: in sequence by default, in
    /// parallel when they share a start.
    pub scenarios: Vec<ScenarioPlan>,
    /// Runs after the scenarios, even when a threshold aborted them.
    pub teardown: Vec<SetupStep>,
    pub thresholds: Vec<Threshold>,
    /// The DAU helper's arithmetic, printed before the run.
    pub dau: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub name: String,
    /// The most values kept; a capture into a full pool replaces the
    /// oldest, so a long run's memory stays flat.
    pub capacity: usize,
}

/// One setup or teardown request, sent `repeat` times with at most
/// `concurrency` in flight (a closed model: setup is about data, not
/// about timing).
#[derive(Debug, Clone)]
pub struct SetupStep {
    pub request: RequestPlan,
    pub repeat: u64,
    pub concurrency: usize,
    /// Accept any TLS certificate (self-signed test servers).
    pub insecure_tls: bool,
}

#[derive(Debug, Clone)]
pub struct ScenarioPlan {
    pub name: String,
    pub executor: Executor,
    /// When the scenario starts, from the start of the load phase.
    pub start: Duration,
    /// Keep-alive connections, which is also the most requests in flight.
    /// With HTTP/2 it is the number of streams in flight, over as few
    /// connections as the server's stream limit allows.
    pub connections: usize,
    pub http2: bool,
    /// Accept any TLS certificate (self-signed test servers).
    pub insecure_tls: bool,
    /// Requests sent before measuring (same executor, nothing recorded).
    pub warmup: Duration,
    /// The weighted mix: each arrival (or each closed-model turn) picks
    /// one request with probability weight / total weight.
    pub requests: Vec<RequestPlan>,
}

impl ScenarioPlan {
    /// How long the scenario runs, warmup included.
    pub fn duration(&self) -> Duration {
        self.warmup + self.executor.duration()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// The open model: `rate` arrivals per second whatever the server does.
    ConstantArrivalRate { rate: f64, duration: Duration },
    /// The open model with a rate that moves linearly from the previous
    /// stage's target (or `start_rate`) to each stage's target.
    RampingArrivalRate { start_rate: f64, stages: Vec<Stage> },
    /// The closed model: every connection sends back to back.
    ConstantConnections { duration: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub target: f64,
    pub duration: Duration,
}

impl Executor {
    pub fn duration(&self) -> Duration {
        match self {
            Executor::ConstantArrivalRate { duration, .. } => *duration,
            Executor::ConstantConnections { duration } => *duration,
            Executor::RampingArrivalRate { stages, .. } => stages.iter().map(|s| s.duration).sum(),
        }
    }

    /// The highest arrival rate the executor asks for; `None` in the
    /// closed model.
    pub fn peak_rate(&self) -> Option<f64> {
        match self {
            Executor::ConstantArrivalRate { rate, .. } => Some(*rate),
            Executor::RampingArrivalRate { start_rate, stages } => {
                Some(stages.iter().map(|s| s.target).fold(*start_rate, f64::max))
            }
            Executor::ConstantConnections { .. } => None,
        }
    }

    /// `constant-arrival-rate`, as the file names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Executor::RampingArrivalRate { .. } => "ramping-arrival-rate",
            Executor::ConstantConnections { .. } => "constant-connections",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// The metric label; unique within a scenario.
    pub name: String,
    /// Relative share in the scenario's mix; 0 only in setup/teardown.
    pub weight: u32,
    pub method: Method,
    /// Renders to an absolute `http://` or `https://` URL.
    pub url: Template,
    pub headers: Vec<(HeaderName, Template)>,
    /// Rendered once per request; a `json:` body is compiled to its text.
    pub body: Option<Template>,
    /// Values to keep from the response, each into a pool.
    pub captures: Vec<Capture>,
    /// Assertions counted by name; a failure never stops the run.
    pub checks: Vec<Check>,
    /// Statuses that are not errors (default 200-399).
    pub expect_status: StatusSet,
    pub timeout: Duration,
}

impl RequestPlan {
    /// Whether the engine must keep the response body (otherwise it is
    /// read and dropped chunk by chunk).
    pub fn needs_body(&self) -> bool {
        self.captures.iter().any(Capture::needs_body) || self.checks.iter().any(Check::needs_body)
    }
}

/// Inclusive status ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        Self(vec![(200, 399)])
    }
}
