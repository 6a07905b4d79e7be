//! The inference module as the platform's registry sees it.

use crate::config::InferenceConfig;
use crate::feedback::PredictionMemory;
use crate::models::{LoadSettings, Models};
use crate::names::ModelName;
use crate::policy::Policies;
use crate::pool::ComputePool;
use crate::service::Service;
use crate::store::{LocalStore, ModelStore};
use crate::{http, SERVICE};
use axum::Router;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, Module, ModuleConfig, StartError};
use kit::tasks::{OnFailure, TaskSpawner};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// The started module.
pub struct Inference {
    service: Arc<Service>,
    pool: Arc<ComputePool>,
    batchers: TaskTracker,
    tasks: TaskSpawner,
}

impl ModuleConfig for InferenceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        InferenceConfig::validate(self)
    }
}

impl Module for Inference {
    const DECLARATION: Declaration = Declaration {
        name: SERVICE,
        prefixes: &["/v2"],
        scoped_prefixes: &[(http::REPOSITORY_PREFIX, "models:admin")],
        needs: &[],
        after: &[],
        fronts_others: false,
        error_dialect: kit::problem::ErrorDialect::Oip,
    };
    type Config = InferenceConfig;

    async fn start(config: InferenceConfig, context: Context) -> Result<Self, StartError> {
        let store: Arc<dyn ModelStore> = Arc::new(LocalStore::new(
            config.repository.clone(),
            config.max_model_bytes,
        ));
        Self::start_with_store(config, context, store).await
    }

    fn router(&self) -> Router {
        http::routes(self.service.clone())
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![Arc::new(ModelsLoaded(self.service.clone()))]
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        http::openapi()
    }

    async fn shutdown(self) {
        self.service.stopping.store(true, Ordering::Relaxed);
        self.tasks.shutdown().await;
        self.service.shadows.close();
        self.service.shadows.wait().await;
        self.service.models.unload_all();
        self.batchers.close();
        self.batchers.wait().await;
        let pool = self.pool.clone();
        let _ = tokio::task::spawn_blocking(move || pool.shutdown()).await;
    }
}

impl Inference {
    /// Starts on any model store (tests and other adapters).
    pub async fn start_with_store(
        config: InferenceConfig,
        context: Context,
        store: Arc<dyn ModelStore>,
    ) -> Result<Self, StartError> {
        crate::metrics::describe();
        let pool = Arc::new(ComputePool::new(config.worker_count())?);
        let batchers = TaskTracker::new();
        let models = Models::new(
            store.clone(),
            pool.clone(),
            batchers.clone(),
            LoadSettings {
                default_max_batch_size: config.default_max_batch_size,
                default_max_batch_delay: config.default_max_batch_delay,
                queue_capacity: config.queue_capacity,
                drift_window: config.drift_window,
            },
        );
        models.record_changes(kit::changes::ChangeRecorder::from_ports(&context.ports));
        let wanted: Vec<ModelName> = if config.models.is_empty() {
            match store.list().await {
                Ok(listed) => listed.into_iter().map(|(name, _)| name).collect(),
                Err(e) => {
                    tracing::warn!(repository = %config.repository.display(), error = %e, "the model repository cannot be listed; serving no models");
                    Vec::new()
                }
            }
        } else {
            config
                .models
                .iter()
                .filter_map(|n| ModelName::parse(n).ok())
                .collect()
        };
        for name in &wanted {
            // A model that fails is logged and shown in the index; the
            // others serve.
            if let Err(e) = models.load(name, "system").await {
                tracing::error!(model = %name, error = %e, "model not loaded at start");
            }
        }
        let policies = Policies::default();
        for (name, policy) in &config.policies {
            let loaded = models
                .get(name)
                .map(|m| m.version_numbers())
                .unwrap_or_default();
            policies
                .set(name, policy.clone(), &loaded)
                .map_err(|e| ConfigError::invalid("inference.policies", format!("{name}: {e}")))?;
        }
        let service = Arc::new(Service {
            models,
            policies,
            memory: PredictionMemory::new(config.prediction_memory),
            shadows: TaskTracker::new(),
            expected: wanted.iter().map(|n| n.to_string()).collect(),
            stopping: AtomicBool::new(false),
        });
        let drift = service.clone();
        let stop = context.tasks.stop_token();
        let interval = config.drift_interval;
        context
            .tasks
            .spawn("drift", OnFailure::Unready, async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok::<(), Infallible>(()),
                        _ = tick.tick() => {
                            for model in drift.models.all() {
                                for version in model.versions.values() {
                                    if let Some(monitor) = &version.drift {
                                        monitor.publish();
                                    }
                                }
                            }
                        }
                    }
                }
            });
        // A canary controller in this process steps model versions here.
        if let Ok(registry) = context.ports.get::<kit::traffic::SplitRegistry>() {
            registry.register(
                "inference",
                Arc::new(crate::splits::ModelSplits(service.clone())),
            );
        }
        Ok(Self {
            service,
            pool,
            batchers,
            tasks: context.tasks,
        })
    }
}

/// Ready when every model loaded at start is loaded.
struct ModelsLoaded(Arc<Service>);

impl ReadinessCheck for ModelsLoaded {
    fn name(&self) -> &str {
        "models"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let missing = self.0.missing_models();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not loaded: {}", missing.join(", ")))
            }
        })
    }
}
