//! The LLM gateway as the platform's registry sees it.

use crate::admission::Admission;
use crate::backend::{Backend, BackendUrl};
use crate::catalog::{intern, Catalog, PoolFactory};
use crate::config::{LlmConfig, DEFAULT_BACKEND};
use crate::discovery::{self, Watched};
use crate::service::Service;
use crate::settle::Settler;
use crate::{http, usage, SERVICE};
use axum::Router;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, HttpLimits, Module, ModuleConfig, Port, StartError};
use kit::storage::DatabaseReady;
use kit::tasks::{OnFailure, TaskSpawner};
use ratelimit::RateLimiter;
use resilience::RetryBudget;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The started module.
pub struct Llm {
    service: Arc<Service>,
    tasks: TaskSpawner,
    database: kit::storage::Pool,
    /// Every backend, whose upstream connections close at shutdown.
    backends: Vec<Arc<crate::backend::Backend>>,
}

impl ModuleConfig for LlmConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        LlmConfig::validate(self)
    }

    fn configured(&self) -> bool {
        self.has_backends()
    }

    /// A non-streamed completion takes as long as the whole generation;
    /// prompts are larger than the platform's default body.
    fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            request_timeout: Some(self.timeouts.total),
            body_limit_bytes: Some(self.max_request_body_bytes),
        }
    }
}

impl Module for Llm {
    const DECLARATION: Declaration = Declaration {
        name: SERVICE,
        prefixes: &[],
        scoped_prefixes: &[("/v1", "llm:invoke"), (http::USAGE_PREFIX, "llm:admin")],
        needs: &[Port::Database, Port::Limiter],
        after: &[],
        fronts_others: false,
        error_dialect: kit::problem::ErrorDialect::OpenAi,
    };
    type Config = LlmConfig;

    async fn start(config: LlmConfig, context: Context) -> Result<Self, StartError> {
        if !config.has_backends() {
            return Err("the llm module has no backends: set RELIABLE_LLM_BACKEND_URL (an OpenAI base URL such as http://127.0.0.1:8000/v1) or add [llm.backends.NAME] and [llm.models.NAME] to the config file".into());
        }
        crate::metrics::describe();
        let mut backends: BTreeMap<&'static str, Arc<Backend>> = BTreeMap::new();
        let mut watched = Vec::new();
        if let Some(url) = &config.backend_url {
            let backend = Arc::new(Backend::new(
                DEFAULT_BACKEND,
                BackendUrl::parse(url)?,
                config.backend_api_key.as_ref(),
                Vec::new(),
                None,
            )?);
            watched.push(Watched {
                backend: backend.clone(),
                discover: true,
            });
            backends.insert(DEFAULT_BACKEND, backend);
        }
        for (name, backend_config) in &config.backends {
            let name = intern(name);
            let backend = Arc::new(Backend::from_config(name, backend_config)?);
            watched.push(Watched {
                backend: backend.clone(),
                discover: backend_config.discover,
            });
            backends.insert(name, backend);
        }
        let factory = PoolFactory {
            clock: context.clock.clone(),
            failures_to_open: config.breaker.failures_to_open,
            open_for: config.breaker.open_for,
        };
        let catalog = Arc::new(Catalog::new(&config, &backends, factory));
        let all_backends: Vec<_> = backends.values().cloned().collect();
        // One look at every backend before serving: discovered models are
        // listed, and a dead backend starts ejected.
        for w in &watched {
            discovery::check(w, &catalog, config.health.timeout).await;
        }
        let limiter = context.ports.get::<Arc<dyn RateLimiter>>()?;
        let url = context
            .database_url
            .as_deref()
            .ok_or("the llm module needs a database for its usage ledger")?;
        let store = usage::connect(url, &config.database).await?;
        let database = store.pool();
        let (ledger, writer) = usage::ledger(store.clone(), config.usage_queue);
        let stop = context.tasks.stop_token();
        context
            .tasks
            .spawn("usage-ledger", OnFailure::Unready, writer.run(stop.clone()));
        let watcher_catalog = catalog.clone();
        let (health, discovery_every, timeout) = (
            config.health.interval,
            config.discovery_interval,
            config.health.timeout,
        );
        let watch_stop = stop.clone();
        context
            .tasks
            .spawn("backend-checks", OnFailure::Unready, async move {
                discovery::watch(
                    watched,
                    watcher_catalog,
                    health,
                    discovery_every,
                    timeout,
                    watch_stop,
                )
                .await;
                Ok::<(), Infallible>(())
            });
        let admission = Arc::new(Admission::new(&config, limiter));
        let settler = Settler {
            admission: admission.clone(),
            ledger,
            tasks: TaskTracker::new(),
            clock: context.clock.clone(),
        };
        let service = Arc::new(Service {
            catalog,
            admission,
            settler,
            usage: store,
            retry_budget: RetryBudget::new(
                config.retry.budget_ratio,
                config.retry.budget_min_reserve,
            ),
            max_retries: config.retry.max_retries,
            retry_backoff: config.retry.backoff,
            max_request_bytes: config.max_request_body_bytes,
            max_response_bytes: config.max_response_bytes,
            debug_sample: config.debug_sample,
            streams: TaskTracker::new(),
            stop: CancellationToken::new(),
            stopping: AtomicBool::new(false),
        });
        Ok(Self {
            service,
            tasks: context.tasks,
            database,
            backends: all_backends,
        })
    }

    fn router(&self) -> Router {
        http::routes(self.service.clone())
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![
            Arc::new(DatabaseReady::new(SERVICE, self.database.clone())),
            Arc::new(ModelsListed(self.service.clone())),
        ]
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        http::openapi()
    }

    async fn shutdown(self) {
        let service = &self.service;
        service.stopping.store(true, Ordering::Relaxed);
        // Open streams end with an error event; their settlements run.
        service.stop.cancel();
        service.streams.close();
        service.streams.wait().await;
        service.settler.tasks.close();
        service.settler.tasks.wait().await;
        // Then the ledger writes what is queued.
        self.tasks.shutdown().await;
        for backend in &self.backends {
            backend.client.shutdown().await;
        }
    }
}

/// Ready when there is a model to serve.
struct ModelsListed(Arc<Service>);

impl ReadinessCheck for ModelsListed {
    fn name(&self) -> &str {
        "llm-models"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if self.0.catalog.list().is_empty() {
                Err("no model is served: no backend listed any".to_string())
            } else {
                Ok(())
            }
        })
    }
}
