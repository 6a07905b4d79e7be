//! The console's data sources over the running process.
//!
//! The console crate knows no module (module crates never depend on each
//! other); the binary does, so it answers the console's questions here:
//!
//! - [`PlatformView`]: the started modules in start order with their own
//!   readiness, their traffic over 5 minutes ([`crate::console_traffic`],
//!   sampled from this process's `/metrics` on a tracked task), the
//!   dependencies behind the ports and the service graph;
//! - [`RouterApi`]: a module's JSON API called in-process (canary,
//!   inference), so the console shows what a script would see;
//! - [`GatewayKeys`]: the gateway's key store, for a console listening
//!   beyond loopback (hashes compared, never raw keys);
//! - [`error_budget_policy`]: `slo/policy/error-budget.yaml`, compiled in.

use crate::console_traffic::TrafficWindow;
use async_trait::async_trait;
use axum::body::Body;
use axum::Router;
use bus::JetStreamBus;
use console::sources::{
    DependencyState, DependencyStatus, EdgeKind, GraphEdge, GraphNode, KeyVerifier, ModuleApi,
    ModuleStatus, NodeKind, PlatformSource, ServiceGraph, SourceError,
};
use gateway::keys::{ApiKey, KeyStore};
use kit::health::Readiness;
use kit::module::Port;
use kit::tasks::TaskSpawner;
use kit::Clock;
use slo::policy::Policy;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt as _;

/// The node every outside request comes from.
const CLIENT: &str = "client";

/// One started module, as the console sees it.
pub struct ModuleView {
    pub name: &'static str,
    /// Its own checks (never the front's draining state).
    pub readiness: Readiness,
    pub needs: &'static [Port],
    pub fronts_others: bool,
    /// Whether it serves routes of its own (a pool behind the front).
    pub serves_routes: bool,
}

/// Which adapters are behind the ports.
pub struct Adapters {
    /// `sqlite` or `postgresql`, when a module uses a database.
    pub database: Option<&'static str>,
    /// The bus: `in-process` (`None`) or NATS JetStream (its client).
    pub bus: Option<Option<JetStreamBus>>,
    /// `in-process` or `redis`, when the limiter is wired.
    pub limiter: Option<&'static str>,
}

/// [`PlatformSource`] over the running process.
pub struct PlatformView {
    modules: Vec<ModuleView>,
    adapters: Adapters,
    traffic: Arc<Mutex<TrafficWindow>>,
}

fn lock(traffic: &Mutex<TrafficWindow>) -> std::sync::MutexGuard<'_, TrafficWindow> {
    traffic.lock().unwrap_or_else(|e| e.into_inner())
}

impl PlatformView {
    pub fn new(modules: Vec<ModuleView>, adapters: Adapters) -> Self {
        Self {
            modules,
            adapters,
            traffic: Arc::default(),
        }
    }

    /// Samples `/metrics` every `every` on a task of `tasks` (at least 5
    /// minutes are kept, whatever `every`).
    pub fn sample_traffic(&self, every: Duration, clock: Arc<dyn Clock>, tasks: &TaskSpawner) {
        let traffic = self.traffic.clone();
        // Without it the overview shows stale rates: fail readiness so
        // someone looks, as the SLO evaluator does.
        crate::metrics_tick::spawn(tasks, "console-traffic", every, move |text| {
            lock(&traffic).observe(clock.now().timestamp_millis(), &text);
            std::future::ready(())
        });
    }

    #[cfg(test)]
    pub fn observe(&self, at_ms: i64, metrics: &str) {
        lock(&self.traffic).observe(at_ms, metrics);
    }

    fn dependency_names(needs: &[Port]) -> Vec<String> {
        needs.iter().map(|p| p.name().to_string()).collect()
    }
}

#[async_trait]
impl PlatformSource for PlatformView {
    async fn modules(&self) -> Vec<ModuleStatus> {
        let mut out = Vec::with_capacity(self.modules.len());
        for module in &self.modules {
            let failures = module.readiness.failures().await;
            let traffic = lock(&self.traffic).service(module.name);
            out.push(ModuleStatus {
                name: module.name.to_string(),
                ready: failures.is_empty(),
                not_ready_reasons: failures
                    .into_iter()
                    .map(|(check, error)| format!("{check}: {error}"))
                    .collect(),
                request_rate: traffic.map(|t| t.rate),
                error_ratio: traffic.and_then(|t| t.error_ratio),
                p99_seconds: traffic.and_then(|t| t.p99_seconds),
                depends_on: Self::dependency_names(module.needs),
            });
        }
        out
    }

    async fn dependencies(&self) -> Vec<DependencyStatus> {
        let mut out = Vec::new();
        if let Some(adapter) = self.adapters.database {
            // Every module's `<module>-database` check (kit::storage).
            let mut failed = Vec::new();
            for module in self
                .modules
                .iter()
                .filter(|m| m.needs.contains(&Port::Database))
            {
                for (check, error) in module.readiness.failures().await {
                    if check.ends_with("-database") {
                        failed.push(format!("{check}: {error}"));
                    }
                }
            }
            out.push(DependencyStatus {
                name: Port::Database.name().to_string(),
                adapter: adapter.to_string(),
                state: if failed.is_empty() {
                    DependencyState::Up
                } else {
                    DependencyState::Down
                },
                detail: (!failed.is_empty()).then(|| failed.join("; ")),
            });
        }
        if let Some(bus) = &self.adapters.bus {
            let (adapter, state, detail) = match bus {
                None => ("in-process", DependencyState::Up, None),
                Some(nats) if nats.is_connected() => ("nats-jetstream", DependencyState::Up, None),
                Some(_) => (
                    "nats-jetstream",
                    DependencyState::Down,
                    Some("not connected to NATS".to_string()),
                ),
            };
            out.push(DependencyStatus {
                name: Port::Bus.name().to_string(),
                adapter: adapter.to_string(),
                state,
                detail,
            });
        }
        if let Some(adapter) = self.adapters.limiter {
            // Redis has no readiness check of its own: the gateway keeps
            // serving when it is down (`gateway.rate_limit_when_down`).
            out.push(DependencyStatus {
                name: Port::Limiter.name().to_string(),
                adapter: adapter.to_string(),
                state: if adapter == "in-process" {
                    DependencyState::Up
                } else {
                    DependencyState::Unknown
                },
                detail: None,
            });
        }
        out
    }

    async fn metrics_text(&self) -> Option<String> {
        Some(kit::metrics::render())
    }

    fn graph(&self) -> ServiceGraph {
        let traffic = lock(&self.traffic);
        let http = |from: &str, to: &str| {
            let t = traffic.service(to);
            GraphEdge {
                from: from.to_string(),
                to: to.to_string(),
                kind: EdgeKind::Http,
                rate: t.map(|t| t.rate),
                error_ratio: t.and_then(|t| t.error_ratio),
            }
        };
        let mut graph = ServiceGraph::default();
        graph.nodes.push(GraphNode {
            id: CLIENT.to_string(),
            kind: NodeKind::Client,
        });
        let front = self.modules.iter().find(|m| m.fronts_others);
        if let Some(front) = front {
            graph.edges.push(http(CLIENT, front.name));
        }
        for module in &self.modules {
            graph.nodes.push(GraphNode {
                id: module.name.to_string(),
                kind: NodeKind::Module,
            });
            if module.serves_routes && !module.fronts_others {
                graph
                    .edges
                    .push(http(front.map_or(CLIENT, |f| f.name), module.name));
            }
            for port in module.needs {
                graph.edges.push(GraphEdge {
                    from: module.name.to_string(),
                    to: port.name().to_string(),
                    kind: EdgeKind::Dependency,
                    rate: None,
                    error_ratio: None,
                });
            }
        }
        let running = |name: &str| self.modules.iter().any(|m| m.name == name);
        if running("orders") && running("notifier") {
            let events = traffic.events();
            graph.edges.push(GraphEdge {
                from: "orders".to_string(),
                to: "notifier".to_string(),
                kind: EdgeKind::Event,
                rate: events.map(|e| e.0),
                error_ratio: events.and_then(|e| e.1),
            });
        }
        for port in [Port::Database, Port::Bus, Port::Limiter] {
            if self.modules.iter().any(|m| m.needs.contains(&port)) {
                graph.nodes.push(GraphNode {
                    id: port.name().to_string(),
                    kind: NodeKind::Dependency,
                });
            }
        }
        graph
    }
}

/// The largest answer [`RouterApi`] reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A module's JSON API over its in-process router.
pub struct RouterApi {
    what: &'static str,
    router: Router,
}

impl RouterApi {
    /// `what` names the module in errors.
    pub fn new(what: &'static str, router: Router) -> Self {
        Self { what, router }
    }
}

impl RouterApi {
    /// One in-process request; the JSON body of a 2xx answer.
    async fn call(
        &self,
        method: http::Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, SourceError> {
        let unavailable = |why: String| SourceError::Unavailable(format!("{}: {why}", self.what));
        let mut request = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::ACCEPT, "application/json");
        let body = match body {
            Some(json) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .map_err(|_| unavailable(format!("`{path_and_query}` is not a path")))?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|_| unavailable(format!("answer over {MAX_ANSWER_BYTES} bytes")))?;
        if !status.is_success() {
            // A problem+json `detail` when there is one, else the start
            // of the body.
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(SourceError::Status {
                what: self.what.to_string(),
                status: status.as_u16(),
                detail,
            });
        }
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("not JSON: {e}")))
    }
}

#[async_trait]
impl ModuleApi for RouterApi {
    async fn get_json(&self, path_and_query: &str) -> Result<serde_json::Value, SourceError> {
        self.call(http::Method::GET, path_and_query, None).await
    }

    async fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, SourceError> {
        self.call(http::Method::POST, path, Some(body)).await
    }
}

/// [`KeyVerifier`] over the gateway's key store: the presented key's hash
/// is looked up, as the gateway's admission does.
pub struct GatewayKeys {
    store: Arc<dyn KeyStore>,
}

impl GatewayKeys {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl KeyVerifier for GatewayKeys {
    async fn scopes(&self, presented: &str) -> Result<Option<Vec<String>>, SourceError> {
        let Ok(key) = ApiKey::parse(presented.trim()) else {
            return Ok(None);
        };
        match self.store.find(&key.hash()).await {
            Ok(Some(stored)) if stored.revoked_at.is_none() => Ok(Some(
                stored
                    .scopes
                    .to_stored()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Ok(_) => Ok(None),
            Err(error) => {
                tracing::warn!(error = %error, "console: checking a key");
                Err(SourceError::Unavailable(
                    "the key store does not answer".into(),
                ))
            }
        }
    }
}

/// The error-budget policy (`slo/policy/error-budget.yaml`), compiled in
/// like the built-in SLO specs.
pub fn error_budget_policy() -> anyhow::Result<Policy> {
    Policy::parse(
        "slo/policy/error-budget.yaml",
        include_str!("../../../slo/policy/error-budget.yaml"),
    )
    .map_err(|e| anyhow::anyhow!("slo/policy/error-budget.yaml: {e}"))
}

#[cfg(test)]
#[path = "console_sources_tests.rs"]
mod tests;
