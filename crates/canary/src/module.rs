//! The controller as the platform's registry sees it: `reliable up` runs
//! it next to the modules it steps (targets in process, metrics from this
//! process's registry); `serve --target canary` runs it alone against
//! admin APIs and Prometheus.
//!
//! Run it as one replica (as Argo Rollouts' controller is): runs resume in
//! the process that starts next, and two controllers sharing a database
//! would both resume them.

use crate::config::CanaryConfig;
use crate::controller::{Controller, TargetFactory};
use crate::metrics::{InProcess, MetricsSource, Prometheus};
use crate::spec::TargetSection;
use crate::store::RunStore;
use crate::target::{HttpGateway, HttpInference, InProcessTarget, Target, TargetError};
use axum::Router;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, Module, ModuleConfig, Port, StartError};
use kit::tasks::{OnFailure, TaskSpawner};
use kit::traffic::SplitRegistry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a restarted controller waits for the in-process modules it
/// steps to register before it resumes their runs (they start after it).
const RESUME_WAIT: Duration = Duration::from_secs(30);

impl ModuleConfig for CanaryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        CanaryConfig::validate(self)
    }
}

/// A started controller.
pub struct CanaryModule {
    controller: Controller,
    store: RunStore,
    tasks: TaskSpawner,
    runs: TaskTracker,
    stop: CancellationToken,
}

impl CanaryModule {
    pub fn controller(&self) -> &Controller {
        &self.controller
    }
}

/// The target a plan names: over HTTP when the spec gives an address,
/// else the module registered in this process.
/// `default_key`: the controller's own key (`canary.admin_key`), for specs
/// that name no `admin_key_env`.
pub fn targets(registry: SplitRegistry, default_key: Option<String>) -> TargetFactory {
    Arc::new(move |plan| -> Result<Arc<dyn Target>, TargetError> {
        let bad_url = |url: &str| TargetError::Unknown {
            target: plan.target_key(),
            reason: format!("`{url}` is not a URL"),
        };
        Ok(match &plan.target {
            TargetSection::Gateway {
                route,
                admin_url: Some(url),
                admin_key_env,
            } => {
                let base = url::Url::parse(url).map_err(|_| bad_url(url))?;
                Arc::new(HttpGateway::new(
                    base,
                    route,
                    crate::target::admin_key(admin_key_env.as_deref(), default_key.as_deref()),
                )?)
            }
            TargetSection::Inference {
                model,
                baseline_version,
                canary_version,
                url: Some(url),
                admin_key_env,
            } => {
                let base = url::Url::parse(url).map_err(|_| bad_url(url))?;
                Arc::new(HttpInference::new(
                    base,
                    model,
                    *baseline_version,
                    *canary_version,
                    crate::target::admin_key(admin_key_env.as_deref(), default_key.as_deref()),
                )?)
            }
            section => Arc::new(InProcessTarget::find(&registry, section)?),
        })
    })
}

/// The metrics source a plan reads: its own Prometheus, else the
/// configured one, else this process's registry.
pub fn sources(default: Option<url::Url>) -> crate::controller::SourceFactory {
    let local: Arc<dyn MetricsSource> = Arc::new(InProcess::default());
    Arc::new(
        move |plan| match plan.prometheus.clone().or_else(|| default.clone()) {
            Some(url) => Arc::new(Prometheus::new(url)) as Arc<dyn MetricsSource>,
            None => local.clone(),
        },
    )
}

/// Loads the SLO specs metrics are resolved against: `path` (a file or a
/// directory), else the platform's own.
pub fn load_slos(path: Option<&std::path::Path>) -> Result<Vec<slo::Slo>, String> {
    match path {
        Some(path) => {
            let files = slo::catalog::spec_files(path).map_err(|e| e.to_string())?;
            slo::catalog::load_paths(&files).map_err(|e| e.to_string())
        }
        None => slo::catalog::load_platform().map_err(|e| e.to_string()),
    }
}

impl Module for CanaryModule {
    const DECLARATION: Declaration = Declaration {
        name: crate::SERVICE,
        // Every route needs the scope: no unscoped prefix.
        prefixes: &[],
        scoped_prefixes: &[(crate::http::PREFIX, crate::http::SCOPE)],
        needs: &[Port::Database],
        after: &[],
        fronts_others: false,
        error_dialect: kit::problem::ErrorDialect::Problem,
    };
    type Config = CanaryConfig;

    async fn start(config: CanaryConfig, context: Context) -> Result<Self, StartError> {
        let slos =
            load_slos(config.slo_specs.as_deref()).map_err(|e| format!("canary.slo_specs: {e}"))?;
        let url = context
            .database_url
            .ok_or("the canary controller needs a database")?;
        let store = RunStore::connect(&url, &config.database).await?;
        let registry = context.ports.get::<SplitRegistry>().unwrap_or_default();
        let runs = TaskTracker::new();
        let stop = context.tasks.stop_token().child_token();
        let controller = Controller::new(
            store.clone(),
            slos,
            targets(
                registry.clone(),
                config.admin_key.as_ref().map(|k| k.expose().to_string()),
            ),
            sources(config.prometheus()),
            context.clock.clone(),
            runs.clone(),
            stop.clone(),
        );
        controller.record_changes(kit::changes::ChangeRecorder::from_ports(&context.ports));
        let resumer = controller.clone();
        context
            .tasks
            .spawn("resume-runs", OnFailure::Unready, async move {
                // The in-process modules start after this one: give them
                // time to register before deciding a target is gone.
                let _ = tokio::time::timeout(RESUME_WAIT, registry.wait_for_any()).await;
                let resumed = resumer
                    .resume_unfinished()
                    .await
                    .map_err(|e| e.to_string())?;
                if !resumed.is_empty() {
                    tracing::warn!(runs = resumed.len(), "picked up unfinished canary runs");
                }
                resumer.stop_token().cancelled().await;
                Ok::<(), String>(())
            });
        if let Some(dir) = config.watch_dir.clone() {
            let watcher = controller.clone();
            let interval = config.watch_interval;
            let stop = context.tasks.stop_token();
            context
                .tasks
                .spawn("watch-specs", OnFailure::Unready, async move {
                    crate::watch::run(watcher, dir, interval, stop).await;
                    Ok::<(), String>(())
                });
        }
        Ok(Self {
            controller,
            store,
            tasks: context.tasks,
            runs,
            stop,
        })
    }

    fn router(&self) -> Router {
        crate::http::routes(self.controller.clone())
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![Arc::new(kit::storage::DatabaseReady::new(
            crate::SERVICE,
            self.store.pool(),
        ))]
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        crate::http::openapi()
    }

    async fn shutdown(self) {
        // Runs stop where they are and stay unfinished in the store; the
        // next controller resumes them.
        self.stop.cancel();
        self.runs.close();
        self.runs.wait().await;
        self.tasks.shutdown().await;
    }
}
