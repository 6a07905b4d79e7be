//! The gateway as the platform's registry sees it.
//!
//! The gateway fronts the modules started in the same process: each one
//! becomes an in-process pool named after it, and (unless the config has
//! routes of its own) its declared prefixes become routes to that pool.
//! Each module is its own pool, so each has its own breaker: a failing
//! order path cannot fail redirects fast.

use crate::{keys, Gateway, GatewayConfig, RouteConfig, SERVICE};
use axum::Router;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Colocated, Context, Declaration, Module, ModuleConfig, Port, StartError};
use kit::tasks::{OnFailure, TaskSpawner};
use ratelimit::RateLimiter;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

/// The co-located modules the gateway fronts, as a port.
#[derive(Clone, Default)]
pub struct Fronted(pub Vec<Colocated>);

/// A started gateway and its active health checks.
pub struct GatewayModule {
    gateway: Gateway,
    tasks: TaskSpawner,
}

impl GatewayModule {
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }
}

impl ModuleConfig for GatewayConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        GatewayConfig::validate(self)
    }
}

impl Module for GatewayModule {
    const DECLARATION: Declaration = Declaration {
        name: SERVICE,
        prefixes: &[],
        scoped_prefixes: &[],
        needs: &[Port::Database, Port::Limiter],
        after: &[],
        fronts_others: true,
        error_dialect: kit::problem::ErrorDialect::Problem,
    };
    type Config = GatewayConfig;

    async fn start(mut config: GatewayConfig, context: Context) -> Result<Self, StartError> {
        config.trusted_proxies = context.http.trusted();
        config.max_request_body_bytes = context.http.body_limit_bytes;
        let fronted = context.ports.get::<Fronted>().unwrap_or_default();
        let default_routes = config.routes.is_empty();
        let mut in_process: BTreeMap<String, Router> = BTreeMap::new();
        for module in fronted.0 {
            if default_routes {
                // A module's own limits hold on the way to it too: its
                // timeout for the response head, its largest body.
                let limits = module.http_limits;
                let dialect = module.error_dialect;
                let route_to = |prefix: &str| {
                    let mut route = RouteConfig::new(prefix, module.name);
                    route.errors = dialect;
                    if let Some(timeout) = limits.request_timeout {
                        route.timeout = timeout;
                    }
                    route.max_body_bytes = limits.body_limit_bytes;
                    route
                };
                for prefix in module.prefixes {
                    config.routes.push(route_to(prefix));
                }
                for (prefix, scope) in module.scoped_prefixes {
                    let mut route = route_to(prefix);
                    route.scope = Some(scope.to_string());
                    config.routes.push(route);
                }
            }
            in_process.insert(module.name.to_string(), module.router);
        }
        if config.routes.is_empty() {
            return Err("the gateway has no routes: add [[gateway.routes]] and [gateway.pools.NAME] to the config file, or co-locate a module (--target gateway,shortener)".into());
        }
        // Routes may name the co-located pools: check them before opening
        // the key database.
        let pools: Vec<&str> = in_process.keys().map(String::as_str).collect();
        config.validate_pools(&pools)?;
        let keys = match &context.database_url {
            Some(url) => Some(keys::connect(url, &config.database).await?),
            None => None,
        };
        let limiter = context.ports.get::<Arc<dyn RateLimiter>>()?;
        let active_checks = !config.health.interval.is_zero();
        let gateway = Gateway::build(config, in_process, keys, limiter, context.clock)?;
        if active_checks {
            let checks = gateway.clone();
            let stop = context.tasks.stop_token();
            // Without active checks, an endpoint ejected by its breaker is
            // only tried again by live traffic: serve, but say so.
            context
                .tasks
                .spawn("health-checks", OnFailure::Unready, async move {
                    checks.health_checks(stop).await;
                    Ok::<(), Infallible>(())
                });
        }
        Ok(Self {
            gateway,
            tasks: context.tasks,
        })
    }

    fn router(&self) -> Router {
        self.gateway.router()
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        self.gateway.readiness_check().into_iter().collect()
    }

    /// The gateway has no API of its own yet (keys are managed with
    /// `reliable keys`).
    fn openapi() -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApi::default()
    }

    /// What the gateway may answer on any route it fronts, before or
    /// instead of the module behind it.
    fn front_openapi(merged: &mut utoipa::openapi::OpenApi) {
        use kit::openapi::any_operation as any;
        let responses: &[kit::openapi::ResponseRule] = &[
            ("400", any, "The path climbs (`..`, encoded dots or slashes) or the body could not be read.", &["bad-path", "body-read"]),
            ("401", any, "The route needs an API key, and none, a malformed or an unknown one was sent.", &["api-key-missing", "api-key-malformed", "api-key-rejected"]),
            ("403", any, "The key lacks the route's scope.", &["api-key-scope"]),
            ("413", any, "The body is over the route's limit.", &["body-too-large"]),
            ("429", any, "Over the rate limit (`Retry-After` and `RateLimit-*` headers say when to retry).", &["rate-limited"]),
            ("431", any, "The request headers are over the limit.", &["headers-too-large"]),
            ("502", any, "The upstream failed, its TLS failed, or its response was too large.", &["upstream-unreachable", "upstream-tls", "upstream-response-too-large"]),
            ("503", any, "Shed under load, every endpoint's breaker open, or the rate limiter or key store unavailable.", &["overloaded", "circuit-open", "rate-limiter-unavailable", "key-store-unavailable"]),
            ("504", any, "The upstream did not answer in time.", &["upstream-timeout"]),
        ];
        kit::openapi::add_responses(merged, responses);
    }

    async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}
