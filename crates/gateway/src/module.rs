//! The gateway as the platform's registry sees it.
//!
//! The gateway fronts the modules started in the same process: each one
//! becomes an in-process pool named after it, and (unless the config has
//! routes of its own) its declared prefixes become routes to that pool.
//! Each module is its own pool, so each has its own breaker: a failing
//! order path cannot fail redirects fast.
//!
//! It also serves its admin API on `gateway.admin_listen` when set, keeps
//! every replica's canary shares in step with the database
//! (`split-refresh`), and registers itself as the `"gateway"` kind of the
//! process's [`SplitRegistry`] so a canary controller in the same process
//! can step its routes.

use crate::{database, keys, splits, Gateway, GatewayConfig, RouteConfig, SERVICE};
use axum::Router;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::module::{Colocated, Context, Declaration, Module, ModuleConfig, Port, StartError};
use kit::server::HttpServer;
use kit::tasks::{OnFailure, TaskSpawner};
use kit::traffic::SplitRegistry;
use ratelimit::RateLimiter;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// The co-located modules the gateway fronts, as a port.
#[derive(Clone, Default)]
pub struct Fronted(pub Vec<Colocated>);

/// A started gateway, its active health checks, split refresh and admin
/// listener.
pub struct GatewayModule {
    gateway: Gateway,
    tasks: TaskSpawner,
    admin_addr: Option<SocketAddr>,
    registry: Option<SplitRegistry>,
}

impl GatewayModule {
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Where the admin listener is bound (`gateway.admin_listen`, port 0
    /// resolved), if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
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
        config.security_headers = context.http.security_headers;
        let fronted = context.ports.get::<Fronted>().unwrap_or_default();
        let default_routes = config.routes.is_empty();
        let mut in_process: BTreeMap<String, kit::http::Front> = BTreeMap::new();
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
        // One database holds the keys and the canary splits.
        let (keys, split_store) = match &context.database_url {
            Some(url) => {
                let pool = database::open(url, &config.database).await?;
                (Some(keys::on(pool.clone())), Some(splits::on(pool)))
            }
            None => (None, None),
        };
        let limiter = context.ports.get::<Arc<dyn RateLimiter>>()?;
        let active_checks = !config.health.interval.is_zero();
        let split_refresh = config.split_refresh;
        let admin_listen = config.admin_listen;
        let refresh = split_store.is_some();
        let gateway = Gateway::build(
            config,
            in_process,
            keys,
            split_store,
            limiter,
            context.clock,
        )?;
        // A restart in the middle of a canary keeps the canary's share:
        // the stored shares are in force before the first request.
        gateway
            .refresh_splits()
            .await
            .map_err(|e| format!("reading the canary splits: {e}"))?;
        if refresh {
            let splits = gateway.clone();
            let stop = context.tasks.stop_token();
            // A replica that stops reading them serves stale shares: say so.
            context
                .tasks
                .spawn("split-refresh", OnFailure::Unready, async move {
                    splits.refresh_splits_every(split_refresh, stop).await;
                    Ok::<(), Infallible>(())
                });
        }
        let admin_addr = match admin_listen {
            Some(addr) => {
                // Bound here, so a taken port fails start-up (and port 0
                // is known before serving).
                let server = HttpServer::bind(addr)
                    .await
                    .map_err(|e| format!("binding gateway.admin_listen ({addr}): {e}"))?
                    .with_cost_sampling(context.http.cost_sample_every);
                let bound = server.local_addr();
                let router =
                    kit::http::stack(gateway.admin_router().into(), SERVICE, &context.http);
                let stop = context.tasks.stop_token();
                context.tasks.spawn(
                    "admin-listener",
                    OnFailure::Unready,
                    server.serve(router, stop),
                );
                tracing::info!(listen = %bound, "gateway admin API listening");
                Some(bound)
            }
            None => None,
        };
        gateway.record_changes(kit::changes::ChangeRecorder::from_ports(&context.ports));
        let registry = context.ports.get::<SplitRegistry>().ok();
        if let Some(registry) = &registry {
            registry.register(SERVICE, Arc::new(gateway.clone()));
        }
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
            admin_addr,
            registry,
        })
    }

    fn router(&self) -> Router {
        self.gateway.routes().into()
    }

    fn routes(&self) -> kit::http::Routes {
        self.gateway.routes()
    }

    fn catch_all(&self) -> Option<kit::http::CatchAll> {
        Some(self.gateway.catch_all())
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        self.gateway.readiness_check().into_iter().collect()
    }

    /// Nothing of its own on the public listener (keys are managed with
    /// `reliable keys`). Its admin API (`/admin/v1`, [`crate::admin`]) is
    /// served on `gateway.admin_listen` and, by default, refused on the
    /// public listener, which is what these documents describe; it is
    /// documented in docs/modules/gateway.md instead.
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
            ("503", any, "Shed under load, every endpoint's breaker open, the rate limiter or key store unavailable, or the request's time spent before it could be forwarded.", &["overloaded", "circuit-open", "rate-limiter-unavailable", "key-store-unavailable", "request-timeout"]),
            ("504", any, "The upstream did not answer in time.", &["upstream-timeout"]),
        ];
        kit::openapi::add_responses(merged, responses);
    }

    async fn shutdown(self) {
        if let Some(registry) = &self.registry {
            registry.remove(SERVICE);
        }
        self.tasks.shutdown().await;
        // The server has drained: nothing sends upstream any more.
        self.gateway.close_connections().await;
    }
}
