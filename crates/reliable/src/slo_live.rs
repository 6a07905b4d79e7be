//! The live SLO evaluator inside `reliable up` / `serve`.
//!
//! Every `slo.tick` it renders the process's own `/metrics` text, feeds it
//! to [`slo::eval::Evaluator`] at the injected clock's time, and serves the
//! result at `GET /api/v1/slo/status` (the `api` prefix is reserved from
//! slugs, so no link can shadow it). `reliable slo status` reads that.
//! The specs are the repository's `slo/` directory compiled into the
//! binary, or `slo.specs` to use others.

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use serde::{Deserialize, Serialize};
use slo::eval::Evaluator;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The status endpoint's path.
pub const STATUS_PATH: &str = "/api/v1/slo/status";

type SharedEvaluator = Arc<Mutex<Evaluator>>;

/// Configuration section `slo`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SloConfig {
    /// A spec file or directory to evaluate instead of the built-in specs.
    pub specs: Option<PathBuf>,
    /// How often counters are sampled.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            specs: None,
            tick: Duration::from_secs(10),
        }
    }
}

impl SloConfig {
    pub fn validate(&self) -> Result<(), kit::config::ConfigError> {
        if self.tick < Duration::from_millis(100) {
            return Err(kit::config::ConfigError::invalid(
                "slo.tick",
                "must be at least 100ms",
            ));
        }
        if let Some(path) = &self.specs {
            if !path.exists() {
                return Err(kit::config::ConfigError::invalid(
                    "slo.specs",
                    format!("{} does not exist", path.display()),
                ));
            }
        }
        Ok(())
    }
}

pub fn load_specs(config: &SloConfig) -> anyhow::Result<Vec<slo::Slo>> {
    let slos = match &config.specs {
        Some(path) => slo::catalog::load_paths(std::slice::from_ref(path)),
        None => slo::catalog::load_platform(),
    };
    slos.context("loading SLO specs")
}

/// The running evaluator: its routes and its ticking task.
pub struct LiveSlos {
    evaluator: SharedEvaluator,
}

impl LiveSlos {
    pub fn start(
        config: &SloConfig,
        clock: Arc<dyn Clock>,
        tasks: &TaskSpawner,
    ) -> anyhow::Result<Self> {
        let stop = tasks.stop_token();
        let slos = load_specs(config)?;
        let evaluator = Evaluator::new(&slos);
        if !evaluator.not_evaluable().is_empty() {
            tracing::info!(slos = ?evaluator.not_evaluable(), "SLOs without sum(rate(selector)) queries are not evaluated live");
        }
        let evaluator = Arc::new(Mutex::new(evaluator));
        let ticking = evaluator.clone();
        let tick = config.tick;
        // Without it the status page freezes: serve, but leave rotation.
        tasks.spawn("slo-evaluator", OnFailure::Unready, async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok::<(), std::convert::Infallible>(()),
                    _ = interval.tick() => {
                        let text = kit::metrics::render();
                        let now = clock.now().timestamp_millis();
                        ticking.lock().unwrap_or_else(|e| e.into_inner()).observe_text(now, &text);
                    }
                }
            }
        });
        Ok(Self { evaluator })
    }

    pub fn routes(&self) -> Router {
        Router::new()
            .route(STATUS_PATH, get(slo_status))
            .with_state(self.evaluator.clone())
    }
}

/// The OpenAPI document of the live SLO status.
#[derive(utoipa::OpenApi)]
#[openapi(paths(slo_status))]
pub struct SloApi;

/// Every SLO's SLI, error budget left and burn rates.
///
/// Evaluated in this process from its own metrics.
#[utoipa::path(
    get,
    path = "/api/v1/slo/status",
    tag = "platform",
    responses((status = 200, description = "The live report.", body = slo::status::StatusReport))
)]
async fn slo_status(State(evaluator): State<SharedEvaluator>) -> Json<slo::status::StatusReport> {
    let report = evaluator
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .report("local");
    Json(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_specs_load() {
        let slos = load_specs(&SloConfig::default()).expect("valid");
        let ids: Vec<String> = slos.iter().map(|s| s.id()).collect();
        for id in [
            "gateway-availability",
            "gateway-latency",
            "shortener-redirect-availability",
            "shortener-redirect-latency",
            "orders-create-success",
            "notifier-delivered-within-60s",
            "inference-availability",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
        }
    }
}
