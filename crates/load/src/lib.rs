//! `reliable load`: an HTTP load generator that does not lie about latency.
//!
//! Most benchmarks run a *closed* model: N connections, each sending its
//! next request when the previous one answers. When the server stalls for
//! 200 ms, such a tool simply stops sending for 200 ms and records one slow
//! request, while real users, who keep arriving whatever the server does,
//! would have seen hundreds. The tool has coordinated with the server to
//! omit exactly the measurements that matter (Gil Tene's "coordinated
//! omission"), and its p99 says the server is fine.
//!
//! So there are two models:
//! - **open** (`rate` set): requests are due at fixed intervals from the
//!   start of the run, whatever the server does, as users arrive. Each
//!   request's latency counts from when it was *due*, not from when a
//!   connection got round to sending it, so a stall shows up in every
//!   request scheduled behind it (the correction wrk2 makes). Requests due
//!   while every connection is busy queue and count their wait; requests
//!   still queued when the run ends are reported as `behind_schedule`, and
//!   the report says the rate was not held rather than showing a flattering
//!   tail.
//! - **closed** (`rate` unset): each connection sends back to back, like
//!   wrk. This finds the maximum throughput; its latencies are service
//!   times, not what users would see.
//!
//! Beyond one URL, a scenario file describes traffic the way users
//! make it: a setup phase that seeds data and captures values into pools,
//! weighted mixes of templated requests whose keys follow uniform, hot-set
//! or Zipf choices, scenarios in sequence or in parallel with their own
//! executors, checks counted by name, and k6-style thresholds that set the
//! exit code.
//!
//! Modules:
//! - [`scenario`]: the YAML file format, compiled into a [`plan::Plan`];
//! - [`plan`]: what the engine runs, already validated;
//! - `engine`: threads, precise arrival timers, connections, the collector;
//! - [`results`]: HDR histograms per scenario and request name, a capped
//!   per-second series (memory does not grow with run length);
//! - [`threshold`]: `p(99) < 25ms` and friends;
//! - [`hist`]: a run's histograms in a file (`--out-hist`), and the exact
//!   merge of several agents' files (`reliable load merge`);
//! - [`start_at`]: a wall-clock start so agents begin together;
//! - [`capacity`]: `reliable load plan`, from DAU to cores and replicas;
//! - [`output`], [`observe`]: summary, JSON, CSV, HTML, progress, push;
//! - `report`: the `--url` quick mode's report, whose JSON the benchmark
//!   scripts read.
//!
//! Unsafe code is denied except for one audited line: registering the
//! generator's own timerfd with Tokio's reactor (`engine/timer.rs`), which
//! Tokio marks unsafe because it cannot see that the descriptor is owned.
#![deny(unsafe_code)]

pub mod capacity;
mod engine;
pub mod floor;
pub mod hist;
pub mod observe;
pub mod output;
pub mod plan;
mod report;
pub mod results;
pub mod scenario;
pub mod start_at;
pub mod threshold;

pub use engine::{run, run_at, EngineOptions, SetupError, GRACEFUL_STOP};
pub use report::{Latency, Report};

use http::{HeaderName, HeaderValue, Method};
use plan::{Executor, Plan, RequestPlan, ScenarioPlan, StatusSet};
use report::RunShape;
use results::Results;
use scenario::Template;
use std::time::Duration;
use url::Url;

/// The quick mode: one request to one URL.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// `http://` or `https://`; every request goes to this URL.
    pub url: Url,
    pub method: Method,
    /// Sent with every request, after `Host`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests per second for the open model. `None` runs the closed
    /// model: every connection as fast as the server answers.
    pub rate: Option<f64>,
    /// How long to measure, after the warmup.
    pub duration: Duration,
    /// Load applied before measuring (same rate, nothing recorded), so
    /// caches, connections and the server's allocator settle first.
    pub warmup: Duration,
    /// Keep-alive connections, which is also the most requests in flight.
    /// In the open model, requests due while all are busy wait (and count
    /// the wait), so give it enough for rate x expected latency.
    pub connections: usize,
    /// A request without a complete response after this long is an error;
    /// its connection is replaced.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("only http:// and https:// URLs are supported, got `{0}://`")]
    Scheme(String),
    #[error("the URL `{0}` has no host")]
    NoHost(String),
    #[error("rate must be a positive, finite number of requests per second, got {0}")]
    Rate(f64),
    #[error("connections must be at least 1")]
    Connections,
    #[error("duration must be longer than zero")]
    Duration,
    #[error("timeout must be longer than zero")]
    Timeout,
    #[error(transparent)]
    StartAt(#[from] start_at::StartAtError),
}

impl LoadSpec {
    /// The one-request plan this spec stands for.
    pub fn plan(&self) -> Result<Plan, LoadError> {
        if !matches!(self.url.scheme(), "http" | "https") {
            return Err(LoadError::Scheme(self.url.scheme().to_string()));
        }
        if self.url.host_str().is_none() {
            return Err(LoadError::NoHost(self.url.to_string()));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(LoadError::Rate(rate));
            }
        }
        if self.connections == 0 {
            return Err(LoadError::Connections);
        }
        if self.duration.is_zero() {
            return Err(LoadError::Duration);
        }
        if self.timeout.is_zero() {
            return Err(LoadError::Timeout);
        }
        let request = RequestPlan {
            name: "request".to_string(),
            weight: 1,
            method: self.method.clone(),
            url: Template::literal(self.url.as_str()),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        Template::literal(String::from_utf8_lossy(value.as_bytes())),
                    )
                })
                .collect(),
            body: None,
            captures: Vec::new(),
            checks: Vec::new(),
            // Any answer is an answer; the quick mode counts statuses.
            expect_status: StatusSet(vec![(100, 599)]),
            timeout: self.timeout,
        };
        let executor = match self.rate {
            Some(rate) => Executor::ConstantArrivalRate {
                rate,
                duration: self.duration,
            },
            None => Executor::ConstantConnections {
                duration: self.duration,
            },
        };
        Ok(Plan {
            pools: Vec::new(),
            setup: Vec::new(),
            scenarios: vec![ScenarioPlan {
                name: "load".to_string(),
                executor,
                start: Duration::ZERO,
                connections: self.connections,
                http2: false,
                insecure_tls: false,
                warmup: self.warmup,
                requests: vec![request],
            }],
            teardown: Vec::new(),
            thresholds: Vec::new(),
            dau: None,
        })
    }
}

/// Runs the quick mode and reports what the server did. Fails only if the
/// spec is invalid; errors during the run, a refused connection included,
/// are counted in the report.
pub async fn run_url(spec: LoadSpec, options: &EngineOptions) -> Result<Report, LoadError> {
    Ok(run_url_at(spec, options, None).await?.report)
}

/// A quick-mode run: the report, and the plan and results it came from
/// (for `--out-hist`).
#[derive(Debug, Clone)]
pub struct QuickRun {
    pub report: Report,
    pub plan: Plan,
    pub results: Results,
}

/// [`run_url`], starting the load at `start_at` when given; a start
/// already past is an error.
pub async fn run_url_at(
    spec: LoadSpec,
    options: &EngineOptions,
    start_at: Option<&start_at::StartAt>,
) -> Result<QuickRun, LoadError> {
    let plan = spec.plan()?;
    // The quick mode has no setup, so only the start can fail; an empty
    // report is the honest answer if anything else ever does.
    let results = match engine::run_at(&plan, options, &mut [], start_at).await {
        Ok(results) => results,
        Err(SetupError::StartAt(e)) => return Err(e.into()),
        Err(_) => Results::default(),
    };
    let stats = results.total();
    let scheduled = results.scenarios.first().map(|s| s.scheduled);
    let report = Report::new(
        RunShape {
            rate: spec.rate,
            connections: spec.connections,
            duration: spec.duration,
            warmup: spec.warmup,
            scheduled: spec.rate.and(scheduled),
        },
        &stats,
    );
    Ok(QuickRun {
        report,
        plan,
        results,
    })
}
