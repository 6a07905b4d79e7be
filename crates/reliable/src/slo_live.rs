//! The live SLO evaluator inside `reliable up` / `serve`.
//!
//! Every `slo.tick` it renders the process's own `/metrics` text, feeds it
//! to [`slo::eval::Evaluator`] at the injected clock's time, and serves the
//! result at `GET /api/v1/slo/status` (the `api` prefix is reserved from
//! slugs, so no link can shadow it). `reliable slo status` reads that.
//! The specs are the repository's `slo/` directory compiled into the
//! binary, or `slo.specs` to use others.
//!
//! It is also the console's [`SloSource`]: each tick keeps every SLO's
//! chart point ([`crate::slo_series`], bounded) and stores the alerts'
//! transitions ([`crate::alert_store`], 7 days), so the alert history
//! survives a restart.

use crate::alert_store::{AlertStore, RETENTION};
use crate::slo_series::SloSeries;
use anyhow::Context;
use async_trait::async_trait;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, Utc};
use console::sources::{SloSource, SourceError};
use kit::tasks::TaskSpawner;
use kit::Clock;
use serde::{Deserialize, Serialize};
use slo::alerts::{Alert, AlertTransition, SloPoint};
use slo::eval::Evaluator;
use slo::status::StatusReport;
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

/// How many transitions wait for a store that does not answer; beyond
/// that the oldest are dropped (and counted in the log).
const MAX_UNSAVED: usize = 10_000;
/// How often transitions older than [`RETENTION`] are deleted.
const PRUNE_EVERY: chrono::Duration = chrono::Duration::hours(1);
/// The most transitions one history request returns.
const MAX_HISTORY: usize = 1_000;

/// The running evaluator: its status route, its ticking task, the chart
/// points and the persisted alert history. Clones share it all.
#[derive(Clone)]
pub struct LiveSlos {
    evaluator: SharedEvaluator,
    series: Arc<Mutex<SloSeries>>,
    store: Arc<dyn AlertStore>,
    /// Transitions not yet in the store (it failed); retried next tick.
    unsaved: Arc<Mutex<Vec<AlertTransition>>>,
    last_prune: Arc<Mutex<Option<DateTime<Utc>>>>,
    clock: Arc<dyn Clock>,
}

impl LiveSlos {
    /// An evaluator of `slos` that does not tick by itself ([`Self::tick`]).
    pub fn new(slos: &[slo::Slo], clock: Arc<dyn Clock>, store: Arc<dyn AlertStore>) -> Self {
        let evaluator = Evaluator::new(slos);
        if !evaluator.not_evaluable().is_empty() {
            tracing::info!(slos = ?evaluator.not_evaluable(), "SLOs without sum(rate(selector)) queries are not evaluated live");
        }
        Self {
            evaluator: Arc::new(Mutex::new(evaluator)),
            series: Arc::default(),
            store,
            unsaved: Arc::default(),
            last_prune: Arc::default(),
            clock,
        }
    }

    /// The evaluator of `config`'s specs, ticking every `slo.tick` on a
    /// task of `tasks` on the process's own `/metrics` text.
    pub fn start(
        config: &SloConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn AlertStore>,
        tasks: &TaskSpawner,
    ) -> anyhow::Result<Self> {
        let live = Self::new(&load_specs(config)?, clock, store);
        let ticking = live.clone();
        // Without it the status page freezes: serve, but leave rotation.
        crate::metrics_tick::spawn(tasks, "slo-evaluator", config.tick, move |text| {
            let ticking = ticking.clone();
            async move { ticking.tick(&text).await }
        });
        Ok(live)
    }

    /// One tick at the clock's time on `metrics` (Prometheus text): the
    /// evaluator, the chart points, the transitions into the store, and
    /// once an hour the history's pruning.
    pub async fn tick(&self, metrics: &str) {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let (points, transitions) = {
            let mut evaluator = lock(&self.evaluator);
            evaluator.observe_text(now_ms, metrics);
            (evaluator.points(now_ms), evaluator.take_transitions())
        };
        {
            let mut series = lock(&self.series);
            for (id, point) in &points {
                series.record(id, *point);
            }
        }
        let pending = {
            let mut unsaved = lock(&self.unsaved);
            unsaved.extend(transitions);
            std::mem::take(&mut *unsaved)
        };
        if !pending.is_empty() {
            if let Err(error) = self.store.append(&pending).await {
                tracing::warn!(error = %error, count = pending.len(), "alert history not saved; retrying next tick");
                let mut unsaved = lock(&self.unsaved);
                let mut kept = pending;
                kept.append(&mut unsaved);
                let excess = kept.len().saturating_sub(MAX_UNSAVED);
                if excess > 0 {
                    tracing::warn!(dropped = excess, "alert history buffer full");
                }
                *unsaved = kept.split_off(excess);
            }
        }
        let due = lock(&self.last_prune).is_none_or(|last| now - last >= PRUNE_EVERY);
        if due {
            match self.store.prune(now - RETENTION).await {
                Ok(_) => *lock(&self.last_prune) = Some(now),
                Err(error) => tracing::warn!(error = %error, "alert history not pruned"),
            }
        }
    }

    pub fn routes(&self) -> kit::http::Routes {
        kit::http::Routes::new()
            .route(STATUS_PATH, get(slo_status))
            .with_state(self.evaluator.clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl SloSource for LiveSlos {
    fn report(&self) -> StatusReport {
        lock(&self.evaluator).report("local")
    }

    fn alerts(&self) -> Vec<Alert> {
        lock(&self.evaluator).alerts()
    }

    async fn alert_history(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertTransition>, SourceError> {
        let oldest = self.clock.now() - RETENTION;
        self.store
            .since(since.max(oldest), limit.min(MAX_HISTORY))
            .await
            .map_err(|error| {
                tracing::warn!(error = %error, "reading the alert history");
                SourceError::Unavailable("the alert history's database does not answer".into())
            })
    }

    fn series(&self, slo_id: &str, since_ms: i64, max_points: usize) -> Vec<SloPoint> {
        lock(&self.series).series(slo_id, since_ms, max_points)
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
async fn slo_status(State(evaluator): State<SharedEvaluator>) -> Json<StatusReport> {
    Json(lock(&evaluator).report("local"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::ManualClock;

    const SPEC: &str = "version: prometheus/v1\nservice: api\nslos:\n  - name: availability\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(req_total{code=\"500\"}[{{.window}}]))\n        total_query: sum(rate(req_total[{{.window}}]))\n    alerting:\n      name: ApiBurn\n      annotations:\n        runbook_url: docs/runbooks/slo-burn.md\n";

    fn metrics(ok: u64, failed: u64) -> String {
        format!("req_total{{code=\"200\"}} {ok}\nreq_total{{code=\"500\"}} {failed}\n")
    }

    async fn live(dir: &std::path::Path, clock: &ManualClock) -> LiveSlos {
        let url = format!("sqlite://{}", dir.join("alerts.db").display());
        let store = crate::alert_store::open(&url).await.expect("store");
        let slos = slo::catalog::load_texts(&[("api.yaml".into(), SPEC.into())]).expect("spec");
        LiveSlos::new(&slos, Arc::new(clock.clone()), store)
    }

    #[tokio::test]
    async fn ticks_keep_points_alerts_and_a_history_that_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let clock = ManualClock::new(start);
        let slos = live(dir.path(), &clock).await;
        // Healthy for 10 minutes, then every request fails.
        let (mut ok, mut failed) = (0, 0);
        for minute in 0..40 {
            if minute < 10 {
                ok += 600;
            } else {
                failed += 600;
            }
            slos.tick(&metrics(ok, failed)).await;
            clock.advance(chrono::Duration::minutes(1));
        }
        let alerts = SloSource::alerts(&slos);
        assert!(
            alerts
                .iter()
                .any(|a| a.name == "ApiBurn" && a.state == slo::alerts::AlertState::Firing),
            "{alerts:?}"
        );
        let points = slos.series("api-availability", 0, 1000);
        assert_eq!(points.len(), 40);
        assert_eq!(points[0].at_ms, start.timestamp_millis());
        assert!(points[39].budget_remaining < points[9].budget_remaining);
        assert_eq!(slos.series("api-availability", 0, 4).len(), 4);
        let report = SloSource::report(&slos);
        assert_eq!(report.slos.len(), 1);

        // A restart reads the history back from the store.
        let restarted = live(dir.path(), &clock).await;
        let history = restarted.alert_history(start, 100).await.expect("history");
        let page = history
            .iter()
            .find(|t| t.name == "ApiBurn" && t.firing)
            .expect("the page alert started firing");
        assert_eq!(page.runbook.as_deref(), Some("docs/runbooks/slo-burn.md"));
        assert!(history.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
        assert_eq!(
            restarted
                .alert_history(start, 1)
                .await
                .expect("history")
                .len(),
            1
        );

        // Eight days later the history is pruned on the next tick.
        clock.advance(chrono::Duration::days(8));
        restarted.tick(&metrics(ok, failed)).await;
        let old = restarted.store.since(start, 100).await.expect("read");
        assert!(old.is_empty(), "{old:?}");
    }

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
