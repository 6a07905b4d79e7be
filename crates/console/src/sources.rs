//! Where the console's data comes from.
//!
//! Why traits: the console crate must not know the modules (module crates
//! never depend on each other), and its tests must run without a platform.
//! The binary implements these over the running process (its readiness
//! checks, its own `/metrics`, the live SLO evaluator, the change store,
//! the canary and inference modules' routers called in-process); tests
//! implement them with fixed data.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kit::changes::ChangeFeed;
use kit::Clock;
use serde::{Deserialize, Serialize};
use slo::alerts::{Alert, AlertTransition, SloPoint};
use slo::policy::Policy;
use slo::status::StatusReport;
use std::sync::Arc;

/// Everything the console reads.
#[derive(Clone)]
pub struct Sources {
    pub platform: Arc<dyn PlatformSource>,
    pub slos: Arc<dyn SloSource>,
    /// The change timeline; `None` when no change store is wired.
    pub changes: Option<Arc<dyn ChangeFeed>>,
    /// The canary module's HTTP API (`/canary/v1/...`), in-process;
    /// `None` when the module is not running.
    pub canaries: Option<Arc<dyn ModuleApi>>,
    /// The inference module's HTTP API (`/v2/...`), in-process; `None`
    /// when the module is not running.
    pub models: Option<Arc<dyn ModuleApi>>,
    /// The error-budget policy (`slo/policy/`): the band each SLO's
    /// remaining budget puts its service in.
    pub policy: Option<Policy>,
    /// What the modules, routes, models and API keys cost; `None` when
    /// this process does not measure cost (the cost page says so).
    pub cost: Option<Arc<dyn CostSource>>,
    /// Checks presented keys when the console listens beyond loopback.
    pub keys: Option<Arc<dyn KeyVerifier>>,
    pub clock: Arc<dyn Clock>,
}

/// Why a source could not answer; the page shows it instead of data.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("{what} answered {status}: {detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{0}")]
    Unavailable(String),
}

/// The modules, dependencies and call graph of this process.
#[async_trait]
pub trait PlatformSource: Send + Sync {
    /// Every module running in this process, in start order.
    async fn modules(&self) -> Vec<ModuleStatus>;
    /// The dependencies the modules use (database, bus, limiter) and
    /// whether they answer now.
    async fn dependencies(&self) -> Vec<DependencyStatus>;
    /// Who calls whom, with rates on the edges.
    fn graph(&self) -> ServiceGraph;
    /// The process's own `/metrics` text (Prometheus exposition), for the
    /// figures no module API serves (a model version's latency, drift
    /// score and live accuracy); `None` when not wired.
    async fn metrics_text(&self) -> Option<String> {
        None
    }
}

/// One module's health and traffic over the last 5 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleStatus {
    /// Its name (its `service` label).
    pub name: String,
    pub ready: bool,
    /// Why it is not ready (failed checks), empty when ready.
    pub not_ready_reasons: Vec<String>,
    /// Requests per second over the last 5 minutes; `None` before two
    /// samples exist.
    pub request_rate: Option<f64>,
    /// Share of those answered 5xx.
    pub error_ratio: Option<f64>,
    /// 99th percentile latency over the last 5 minutes, in seconds.
    pub p99_seconds: Option<f64>,
    /// Dependency names (as in [`DependencyStatus::name`]) it uses.
    pub depends_on: Vec<String>,
}

/// Whether a dependency answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    Up,
    Down,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DependencyStatus {
    /// `database`, `bus`, `limiter`.
    pub name: String,
    /// The adapter behind it: `sqlite`, `postgresql`, `in-process`,
    /// `nats-jetstream`, `redis`.
    pub adapter: String,
    pub state: DependencyState,
    /// What failed, when it is down (never a secret: no URLs with passwords).
    pub detail: Option<String>,
}

/// The service graph: clients, modules and dependencies, and the calls
/// between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceGraph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Outside callers (the public listener).
    Client,
    Module,
    Dependency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphNode {
    pub id: String,
    pub kind: NodeKind,
}

/// How one node reaches another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// An HTTP call (the gateway's pools, a module's upstream).
    Http,
    /// Events through the bus (orders -> notifier).
    Event,
    /// Storage or limiter calls.
    Dependency,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// Calls (or events) per second over the last 5 minutes.
    pub rate: Option<f64>,
    /// Share of them that failed.
    pub error_ratio: Option<f64>,
}

/// The live SLO evaluator.
#[async_trait]
pub trait SloSource: Send + Sync {
    /// Every SLO's SLI, budget left and burn rates now.
    fn report(&self) -> StatusReport;
    /// Pending and firing alerts, firing first.
    fn alerts(&self) -> Vec<Alert>;
    /// Alerts that started or stopped firing since `since`, newest first,
    /// at most `limit` (kept for at least 7 days).
    async fn alert_history(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, SourceError>;
    /// One SLO's SLI and budget over time since `since_ms` (Unix ms),
    /// oldest first, at most `max_points` (downsampled evenly).
    fn series(&self, slo_id: &str, since_ms: i64, max_points: usize) -> Vec<SloPoint>;
}

/// A module's HTTP API, called in-process (the console reads the canary
/// and inference modules through their own JSON APIs, so it shows exactly
/// what a script would see).
#[async_trait]
pub trait ModuleApi: Send + Sync {
    /// `GET path_and_query`; the JSON body of a 2xx answer.
    async fn get_json(&self, path_and_query: &str) -> Result<serde_json::Value, SourceError>;
    /// `POST path` with a JSON body, for reads the module's protocol makes
    /// POSTs (the inference repository index); the JSON body of a 2xx
    /// answer. Without an implementation the console says it cannot list.
    async fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, SourceError> {
        let _ = body;
        Err(SourceError::Unavailable(format!(
            "POST {path} is not wired"
        )))
    }
}

/// What the platform costs over a window, priced by the pricing file.
///
/// Asked on every load of the cost page and of the SLO pages (which
/// refresh every `console.refresh`): answer from what is already measured
/// (the sampler's memory), not by measuring.
#[async_trait]
pub trait CostSource: Send + Sync {
    /// The cost over `query`'s window, with one step per `query.step`.
    async fn cost(&self, query: &CostQuery) -> Result<CostReport, SourceError>;
}

/// The window the console asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostQuery {
    /// The window in OpenCost's form (`1h`, `24h`, `7d`...), ending now.
    pub window: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The width of one bar of the chart; the window holds a whole number
    /// of steps.
    pub step: std::time::Duration,
}

/// What the platform cost over a window: plain figures in one currency.
/// Lists need no order (the console sorts them) and may be long (it shows
/// the top ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostReport {
    /// ISO 4217 code from the pricing file (`USD`).
    pub currency: String,
    /// The prices are the examples compiled into Reliable, not the
    /// operator's: every figure is a placeholder.
    pub example_prices: bool,
    /// Cost per module in each step, oldest first.
    pub steps: Vec<CostStep>,
    /// Per module: its total cost and requests over the window.
    pub modules: Vec<CostLine>,
    /// Per HTTP route (and `task:<name>` background task).
    pub routes: Vec<CostLine>,
    /// Per inference model version (`NAME:VERSION`) and LLM model.
    pub models: Vec<CostLine>,
    /// LLM spend per API key, with its monthly budget.
    pub keys: Vec<KeySpend>,
    /// Capacity paid for and used by nothing (OpenCost's idle line).
    pub idle: f64,
    /// Everything, idle included.
    pub total: f64,
    /// `total` over 30 days at the window's rate.
    pub projected_month: f64,
}

/// One bar of the cost chart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostStep {
    /// The step's start (Unix ms).
    pub start_ms: i64,
    /// Cost per module in the step; a module absent spent nothing.
    pub modules: std::collections::BTreeMap<String, f64>,
}

/// What one module, route or model cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostLine {
    /// The module, route template or model version.
    pub name: String,
    /// The module it belongs to (its own name for a module line).
    pub module: String,
    pub cost: f64,
    /// Requests answered in the window (0 for a background task).
    pub requests: u64,
}

/// What one LLM API key spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeySpend {
    /// The key's name (`anonymous` for calls without one).
    pub key: String,
    /// Its monthly budget from the pricing file; `None` without one.
    pub budget: Option<f64>,
    /// Spent in the window.
    pub spent: f64,
    /// `spent` over 30 days at the window's rate.
    pub projected_month: f64,
    /// The projection is above the budget.
    pub over_budget: bool,
}

/// Checks a presented API key (the gateway's key store).
#[async_trait]
pub trait KeyVerifier: Send + Sync {
    /// The key's scopes; `None` for an unknown or revoked key.
    async fn scopes(&self, presented: &str) -> Result<Option<Vec<String>>, SourceError>;
}

/// The scope a key needs to read the console on a non-loopback address.
pub const READ_SCOPE: &str = "console:read";
