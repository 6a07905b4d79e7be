//! The API gateway: every public request enters here.
//!
//! - [`config`]: routes, pools, limits, breaker/retry/health settings;
//! - [`path`]: the request path, refused when it tries to climb;
//! - [`forwarding`]: hop-by-hop headers and the client IP behind proxies;
//! - [`routes`]: the compiled route table and the canary split;
//! - [`pool`] and [`breaker`]: endpoints, power-of-two-choices, passive
//!   ejection by a breaker per endpoint; [`health`]: active `/readyz` checks;
//! - [`upstream`]: an endpoint is an HTTP base URL or an in-process router
//!   (co-located modules, no TCP hop);
//! - [`retry`]: the retry budget and jittered backoff;
//! - [`keys`]: API keys (domain, storage port, SQLite/PostgreSQL adapters,
//!   a short-lived cache of found keys);
//! - [`admission`]: key check, scopes and rate limits before a request
//!   costs an upstream anything;
//! - [`proxy`]: the request path itself; [`error`]: problem+json for all.
//!
//! The gateway is a fallback router: the platform merges its own
//! `/healthz`, `/readyz` and `/metrics` in front and wraps it in kit's
//! stack (request id, trace context, panic catching).
#![forbid(unsafe_code)]

pub mod admission;
pub mod breaker;
pub mod config;
pub mod error;
pub mod forwarding;
pub mod health;
pub mod keys;
pub mod path;
pub mod pool;
pub mod proxy;
pub mod retry;
pub mod routes;
mod telemetry;
pub mod upstream;

pub use config::{GatewayConfig, PoolConfig, RouteConfig};
pub use error::GatewayError;

use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use forwarding::TrustedProxies;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keys::KeyStore;
use kit::Clock;
use pool::Pool;
use ratelimit::{Quota, RateLimiter};
use routes::{Route, RouteTable};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const SERVICE: &str = "gateway";

/// Why a configuration cannot be built into a gateway.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Route(#[from] routes::RouteError),
    #[error("gateway.pools.{pool}: {source}")]
    Pool {
        pool: String,
        source: pool::BadEndpoint,
    },
    #[error("gateway.pools.{0}: a pool needs at least one endpoint")]
    EmptyPool(String),
    #[error("gateway.pools.{0}: the name is taken by the co-located modules")]
    PoolNameTaken(String),
    #[error("gateway.trusted_proxies: {0}")]
    TrustedProxies(#[from] forwarding::BadCidr),
    #[error("gateway.{key}: {source}")]
    Quota {
        key: &'static str,
        source: ratelimit::QuotaError,
    },
    #[error("gateway.{0}: must be above zero")]
    Zero(&'static str),
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What the request path shares.
pub(crate) struct Shared {
    routes: RouteTable,
    pools: Vec<Arc<Pool>>,
    client: HttpClient,
    trusted: TrustedProxies,
    config: GatewayConfig,
    keys: Option<Arc<dyn KeyStore>>,
    limiter: Arc<dyn RateLimiter>,
    anon_quota: Option<Quota>,
    key_quota: Option<Quota>,
    request_durations: telemetry::Series,
    attempt_durations: telemetry::Series,
}

/// A built gateway: serve [`Gateway::router`], run [`Gateway::health_checks`].
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

fn quota(key: &'static str, value: &Option<String>) -> Result<Option<Quota>, BuildError> {
    value
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|source| BuildError::Quota { key, source })
}

impl Gateway {
    /// Parses `config` once. `in_process` adds pools (by name) whose one
    /// endpoint is a router in this process, next to the config's HTTP
    /// pools. `keys` may be absent when no route needs a scope (then any
    /// presented key is refused as unknown).
    pub fn build(
        config: GatewayConfig,
        in_process: BTreeMap<String, Router>,
        keys: Option<Arc<dyn KeyStore>>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BuildError> {
        for (key, value) in [
            ("max_request_body_bytes", config.max_request_body_bytes),
            ("max_response_body_bytes", config.max_response_body_bytes),
            ("max_header_bytes", config.max_header_bytes),
        ] {
            if value == 0 {
                return Err(BuildError::Zero(key));
            }
        }
        let breaker =
            || breaker::Breaker::new(config.breaker.failures_to_open, config.breaker.open_for);
        // Pool names are metric labels and live as long as the process.
        let label = |name: &str| -> &'static str { Box::leak(name.to_string().into_boxed_str()) };
        let mut pools = BTreeMap::new();
        for (name, pool) in &config.pools {
            if pool.endpoints.is_empty() {
                return Err(BuildError::EmptyPool(name.clone()));
            }
            let built = Pool::new(label(name), &pool.endpoints, clock.clone(), breaker).map_err(
                |source| BuildError::Pool {
                    pool: name.clone(),
                    source,
                },
            )?;
            pools.insert(name.clone(), Arc::new(built));
        }
        for (name, router) in in_process {
            if pools.contains_key(&name) {
                return Err(BuildError::PoolNameTaken(name));
            }
            let built = Pool::in_process(label(&name), router, clock.clone(), breaker());
            pools.insert(name, Arc::new(built));
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let budget = retry::RetryBudget::new(
                    config.retry.budget_ratio,
                    config.retry.budget_min_reserve,
                );
                Route::compile(i, r, &pools, budget)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let ttl = config.key_cache_ttl;
        let keys = keys.map(|store| -> Arc<dyn KeyStore> {
            if ttl.is_zero() {
                store
            } else {
                Arc::new(keys::CachedKeyStore::new(store, ttl, clock.clone()))
            }
        });
        let shared = Shared {
            routes: RouteTable::new(routes),
            pools: pools.into_values().collect(),
            client,
            trusted: TrustedProxies::parse(&config.trusted_proxies)?,
            anon_quota: quota("anon_rate", &config.anon_rate)?,
            key_quota: quota("key_rate", &config.key_rate)?,
            config,
            keys,
            limiter,
            request_durations: telemetry::requests(),
            attempt_durations: telemetry::attempts(),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Every path, every method: the proxy. Merge more specific routes
    /// (health, metrics) into it before serving.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", any(proxy::handle))
            .route("/{*path}", any(proxy::handle))
            .with_state(self.shared.clone())
    }

    /// Active health checks until `shutdown`; none if the interval is zero.
    pub async fn health_checks(&self, shutdown: kit::CancellationToken) {
        health::run(&self.shared, shutdown).await;
    }

    /// `gateway-database`: ready while the API key database answers (no
    /// check without one).
    pub fn readiness_check(&self) -> Option<Arc<dyn kit::health::ReadinessCheck>> {
        let keys = self.shared.keys.as_ref()?;
        Some(Arc::new(kit::storage::DatabaseReady::new(
            SERVICE,
            keys.pool(),
        )))
    }

    /// The pools, for tests and the console.
    pub fn pools(&self) -> &[Arc<Pool>] {
        &self.shared.pools
    }
}

/// The limiter the gateway should use: Redis (with per-replica failover)
/// when `redis` is set, else in-process.
pub async fn limiter(
    redis: Option<ratelimit::RedisSettings>,
    when_down: &str,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn RateLimiter>, ratelimit::LimiterError> {
    let when_down = match when_down {
        "closed" => ratelimit::WhenDown::FailClosed,
        "open" => ratelimit::WhenDown::FailOpen,
        other => {
            return Err(ratelimit::LimiterError::Config(format!(
                "gateway.rate_limit_when_down must be `open` or `closed`, got `{other}`"
            )))
        }
    };
    let local = ratelimit::LocalLimiter::new(clock.clone());
    let Some(settings) = redis else {
        return Ok(Arc::new(local));
    };
    let redis = ratelimit::RedisLimiter::connect(settings, clock).await?;
    Ok(Arc::new(ratelimit::GlobalLimiter::new(
        redis, local, when_down,
    )))
}
