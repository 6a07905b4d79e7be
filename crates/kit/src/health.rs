//! Liveness and readiness.
//!
//! `/healthz` answers 200 as long as the process can serve HTTP: restarting
//! it would not help anything else. `/readyz` answers 200 only when every
//! registered [`ReadinessCheck`] passes (database reachable, migrations
//! applied) and the process is not draining: on shutdown readiness turns
//! false first, so load balancers stop sending traffic before the listener
//! closes.

use crate::problem::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A dependency the process needs to serve traffic.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Short name shown in `/readyz` output, e.g. `shortener-db`.
    fn name(&self) -> &str;
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// Shared readiness state of one process.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Default)]
struct ReadinessInner {
    draining: AtomicBool,
    checks: std::sync::RwLock<Vec<Arc<dyn ReadinessCheck>>>,
}

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_check(&self, check: Arc<dyn ReadinessCheck>) {
        self.inner
            .checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(check);
    }

    /// Adds every check of `other` (a front that answers for modules
    /// whose own readiness must not drain with it).
    pub fn add_checks_of(&self, other: &Readiness) {
        let checks = other
            .inner
            .checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for check in checks {
            self.add_check(check);
        }
    }

    /// Marks the process as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Runs every check; returns the names and errors of those that failed.
    pub async fn failures(&self) -> Vec<(String, String)> {
        let checks: Vec<_> = self
            .inner
            .checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut failures = Vec::new();
        for check in checks {
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, check.check()).await;
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => format!("timed out after {CHECK_TIMEOUT:?}"),
            };
            failures.push((check.name().to_string(), error));
        }
        failures
    }

    /// `/healthz` and `/readyz`.
    pub fn routes(&self) -> crate::http::Routes {
        crate::http::Routes::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: String,
}

/// The OpenAPI document of `/healthz` and `/readyz`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz))]
pub struct HealthApi;

/// Liveness: 200 while the process can serve HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "platform",
    responses((status = 200, description = "Alive.", body = HealthStatus))
)]
async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness: 200 when every dependency is ready and the process is not draining.
///
/// A 503 names the failed checks in `invalid_params`, never their errors.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "platform",
    responses(
        (status = 200, description = "Ready.", body = HealthStatus),
        (status = 503, description = "Draining, or a dependency is not ready (`invalid_params` names the checks). Problem types: `/problems/unavailable`.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn readyz(State(readiness): State<Readiness>) -> Response {
    if readiness.is_draining() {
        return Problem::unavailable("draining: shutting down").into_response();
    }
    let failures = readiness.failures().await;
    if failures.is_empty() {
        return (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready" })),
        )
            .into_response();
    }
    for (name, error) in &failures {
        tracing::warn!(check = %name, error = %error, "readiness check failed");
    }
    let mut problem = Problem::unavailable("a dependency is not ready");
    for (name, _) in failures {
        // The error text may hold connection details; only the name leaves.
        problem = problem.with_invalid_param(name, "not ready");
    }
    problem.into_response()
}
