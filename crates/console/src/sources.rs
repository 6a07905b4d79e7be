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

/// Checks a presented API key (the gateway's key store).
#[async_trait]
pub trait KeyVerifier: Send + Sync {
    /// The key's scopes; `None` for an unknown or revoked key.
    async fn scopes(&self, presented: &str) -> Result<Option<Vec<String>>, SourceError>;
}

/// The scope a key needs to read the console on a non-loopback address.
pub const READ_SCOPE: &str = "console:read";
