//! The API gateway: every public request enters here.
//!
//! - [`config`]: routes, pools, limits, breaker/retry/health settings,
//!   and their validation;
//! - [`path`]: the request path, refused when it tries to climb;
//! - [`forwarding`]: hop-by-hop headers and the client IP behind proxies;
//! - [`routes`]: the compiled route table and the canary split;
//! - [`upstream`]: an endpoint is an `http://`/`https://` base URL or an
//!   in-process router (co-located modules, no TCP hop);
//! - [`keys`]: API keys (domain, storage port, SQLite/PostgreSQL adapters,
//!   a short-lived cache of found keys);
//! - [`splits`]: each canary route's share, changed at runtime, kept in
//!   the database and read back by every replica; the gateway is a
//!   [`kit::traffic::TrafficSplits`];
//! - [`admin`]: the admin API that changes them (`/admin/v1/...`, own
//!   listener, `admin` scope);
//! - [`database`]: the one database both keys and splits live in;
//! - [`admission`]: key check, scopes and rate limits before a request
//!   costs an upstream anything;
//! - [`proxy`]: the request path itself; [`error`]: problem+json for all.
//!
//! The mechanisms of calling an upstream (pools with power-of-two-choices
//! and passive ejection, breakers, the retry budget, active health
//! checks, the HTTP(S) client and streaming bodies) are the `resilience`
//! crate's; the gateway keeps its routing, admission and header rules.
//!
//! The gateway is the platform's catch-all: the platform merges its own
//! `/healthz`, `/readyz` and `/metrics` with [`Gateway::routes`] and
//! wraps them in kit's stack (request id, trace context, panic catching)
//! with [`Gateway::catch_all`], the proxy, answering every other path.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod config;
pub mod database;
pub mod error;
pub mod forwarding;
pub mod keys;
mod module;
pub mod path;
pub mod proxy;
pub mod routes;
pub mod splits;
mod telemetry;
pub mod upstream;

pub use config::{GatewayConfig, PoolConfig, RateLimitWhenDown, RouteConfig};
pub use error::GatewayError;
pub use module::{Fronted, GatewayModule};

use axum::routing::any;
use axum::Router;
use forwarding::TrustedProxies;
use keys::KeyStore;
use kit::config::ConfigError;
use kit::Clock;
use ratelimit::{Quota, RateLimiter};
use resilience::{Breaker, ClientSettings, HttpClient, PoolMetrics};
use routes::{Route, RouteTable};
use splits::{SplitStore, Splits};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use upstream::Upstream;

pub const SERVICE: &str = "gateway";

/// An upstream pool of the gateway.
pub type Pool = resilience::Pool<Upstream>;
/// One endpoint of a [`Pool`].
pub type Endpoint = resilience::Endpoint<Upstream>;

/// The gateway's names for its endpoints' gauges.
const POOL_METRICS: PoolMetrics = PoolMetrics {
    breaker_state: "gateway_circuit_breaker_state",
    endpoint_healthy: "gateway_endpoint_healthy",
    pool_label: "gateway_pool",
};

/// Why a configuration cannot be built into a gateway.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// What [`GatewayConfig::validate`] and
    /// [`GatewayConfig::validate_pools`] report.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool's client could not be set up (its CA bundle changed
    /// between validation and build).
    #[error("gateway.pools.{pool}: {source}")]
    Client {
        pool: String,
        source: resilience::TlsError,
    },
}

/// What the request path shares.
pub(crate) struct Shared {
    routes: RouteTable,
    /// The canary routes' shares, shared with `routes`.
    splits: Splits,
    pools: Vec<Arc<Pool>>,
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

pub(crate) fn quota(key: &str, value: &Option<String>) -> Result<Option<Quota>, ConfigError> {
    value
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: ratelimit::QuotaError| ConfigError::invalid(key, e.to_string()))
}

/// Metric labels live as long as the process.
fn label(name: &str) -> &'static str {
    Box::leak(name.to_string().into_boxed_str())
}

impl Gateway {
    /// Closes every HTTP pool's idle upstream connections and waits for
    /// their tasks (the module's shutdown, after the server drained).
    pub async fn close_connections(&self) {
        for pool in &self.shared.pools {
            for endpoint in &pool.endpoints {
                if let Upstream::Http { client, .. } = &endpoint.target {
                    client.shutdown().await;
                }
            }
        }
    }

    /// Validates `config` (as [`GatewayConfig::validate`] and
    /// [`GatewayConfig::validate_pools`] do) and parses it once.
    /// `in_process` adds pools (by name) whose one endpoint is a router in
    /// this process, next to the config's HTTP pools. `keys` may be absent
    /// when no route needs a scope (then any presented key is refused as
    /// unknown). Without `splits`, shares changed at runtime live in
    /// memory only; with it, call [`Gateway::refresh_splits`] before
    /// serving so the stored shares are in force.
    pub fn build(
        config: GatewayConfig,
        in_process: BTreeMap<String, impl Into<kit::http::Front>>,
        keys: Option<Arc<dyn KeyStore>>,
        splits: Option<Arc<dyn SplitStore>>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BuildError> {
        config.validate()?;
        let names: Vec<&str> = in_process.keys().map(String::as_str).collect();
        config.validate_pools(&names)?;
        let breaker = || Breaker::new(config.breaker.failures_to_open, config.breaker.open_for);
        let mut pools = BTreeMap::new();
        for (name, pool) in &config.pools {
            let settings = ClientSettings {
                ca_file: pool.ca_file.clone(),
                ..ClientSettings::default()
            };
            let client = HttpClient::new(&settings).map_err(|source| BuildError::Client {
                pool: name.clone(),
                source,
            })?;
            let mut endpoints = Vec::new();
            for (i, url) in pool.endpoints.iter().enumerate() {
                let base = resilience::BaseUrl::parse(url).map_err(|e| {
                    ConfigError::invalid(
                        &format!("gateway.pools.{name}.endpoints[{i}]"),
                        e.to_string(),
                    )
                })?;
                let endpoint_label = label(base.authority().as_str());
                let client = client.clone();
                endpoints.push((Upstream::Http { base, client }, endpoint_label));
            }
            let built = Pool::new(label(name), endpoints, clock.clone(), breaker, POOL_METRICS);
            pools.insert(name.clone(), Arc::new(built));
        }
        for (name, router) in in_process {
            let endpoint = (Upstream::InProcess(router.into()), upstream::IN_PROCESS);
            let built = Pool::new(
                label(&name),
                [endpoint],
                clock.clone(),
                breaker,
                POOL_METRICS,
            );
            pools.insert(name, Arc::new(built));
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let budget = resilience::RetryBudget::new(
                    config.retry.budget_ratio,
                    config.retry.budget_min_reserve,
                );
                Route::compile(i, r, &pools, budget, config.max_request_body_bytes)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let splits = Splits::new(&routes, splits, clock.clone());
        let ttl = config.key_cache_ttl;
        let keys = keys.map(|store| -> Arc<dyn KeyStore> {
            if ttl.is_zero() {
                store
            } else {
                Arc::new(keys::CachedKeyStore::new(store, ttl, clock.clone()))
            }
        });
        let trusted = config.trusted_proxies.clone();
        let shared = Shared {
            routes: RouteTable::new(routes),
            splits,
            pools: pools.into_values().collect(),
            trusted,
            anon_quota: quota("gateway.anon_rate", &config.anon_rate)?,
            key_quota: quota("gateway.key_rate", &config.key_rate)?,
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

    /// Every path, every method: the proxy (and the admin API with
    /// `admin_on_public`), for serving as it is. The platform stacks
    /// [`Gateway::routes`] with [`Gateway::catch_all`] instead
    /// (`kit::http::stack_with_catch_all`), so that the proxy is observed.
    pub fn router(&self) -> Router {
        Router::from(self.routes()).fallback_service(self.catch_all())
    }

    /// The gateway's own routes: `/` (the proxy, under its own route
    /// label) and the admin API with `admin_on_public`. Merge more
    /// specific routes (health, metrics) into it, and give
    /// [`Gateway::catch_all`] every other path.
    pub fn routes(&self) -> kit::http::Routes {
        let proxy = kit::http::Routes::new()
            .route("/", any(proxy::handle))
            .with_state(self.shared.clone());
        if self.shared.config.admin_on_public {
            proxy.merge(self.admin_router())
        } else {
            proxy
        }
    }

    /// The proxy on every path no route matches, labelled `/{*path}`:
    /// called without axum's routing, path parameters or extractors
    /// (issue 18: a `/{*path}` route cost about 4,000 instructions a
    /// request more). It keeps the request's time itself (kit's
    /// `http.request_timeout`): each upstream attempt's deadline is its
    /// route's timeout or the request's, whichever comes first, so a
    /// request arms one timer, not two. It sets its answers' security
    /// headers itself: kit adds none to the upstream's answers it relays
    /// (only routes with `security_headers` get them) and the gateway
    /// adds them to its own errors.
    pub fn catch_all(&self) -> kit::http::CatchAll {
        let shared = self.shared.clone();
        kit::http::CatchAll::keeping_time("/{*path}", move |request, peer, timeout| {
            proxy::respond(shared.clone(), request, peer, timeout)
        })
        .with_own_security_headers()
    }

    /// The admin API alone, for its own listener (`gateway.admin_listen`).
    pub fn admin_router(&self) -> kit::http::Routes {
        admin::router(self.shared.clone())
    }

    /// Reads the stored canary shares and puts those that differ in force
    /// (see [`splits`]); returns how many routes changed share.
    pub async fn refresh_splits(&self) -> Result<usize, kit::storage::StoreError> {
        self.shared.splits.refresh().await
    }

    /// [`Gateway::refresh_splits`] every `every` until `shutdown`; a
    /// failed read is logged and the shares in force are kept.
    pub async fn refresh_splits_every(&self, every: Duration, shutdown: kit::CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh_splits().await {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "reading the canary splits failed; the shares in force are kept"
                );
                metrics::counter!("gateway_split_refresh_failures_total").increment(1);
            }
        }
    }

    /// Active health checks (`GET <endpoint><health.path>`, 2xx within
    /// `health.timeout`) until `shutdown`; none if the interval is zero.
    pub async fn health_checks(&self, shutdown: kit::CancellationToken) {
        let config = &self.shared.config.health;
        let schedule = resilience::HealthSchedule {
            interval: config.interval,
            timeout: config.timeout,
        };
        let probe = |endpoint: Arc<Endpoint>| async move {
            endpoint.target.is_ready(&config.path, config.timeout).await
        };
        resilience::health::run(&self.shared.pools, schedule, probe, shutdown).await;
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

/// The gateway's routes with a canary pool, by route name.
#[async_trait::async_trait]
impl kit::traffic::TrafficSplits for Gateway {
    async fn list(&self) -> Result<Vec<kit::traffic::SplitState>, kit::traffic::SplitError> {
        Ok(self.shared.splits.list())
    }

    async fn get(&self, name: &str) -> Result<kit::traffic::SplitState, kit::traffic::SplitError> {
        self.shared.splits.get(name)
    }

    async fn set(
        &self,
        name: &str,
        percent: f64,
        reason: &str,
    ) -> Result<kit::traffic::SplitState, kit::traffic::SplitError> {
        self.shared
            .splits
            .set(name, percent, &split_actor(reason), reason)
            .await
    }
}

/// Who changed a split through the port, from the reason they gave: the
/// canary controller says `canary <name> ...` (`canary:<name>`); anything
/// else in this process is the platform itself.
fn split_actor(reason: &str) -> String {
    match reason.strip_prefix("canary ") {
        Some(rest) => {
            let name = rest.split([' ', ':']).next().unwrap_or_default();
            format!("canary:{name}")
        }
        None => "system".to_string(),
    }
}

impl Gateway {
    /// Records this gateway's split changes on the platform's change
    /// timeline (`ChangeRecorder::from_ports` in the module's start).
    pub fn record_changes(&self, recorder: kit::changes::ChangeRecorder) {
        self.shared.splits.record_changes(recorder);
    }
}

/// The limiter the gateway should use: Redis (with per-replica failover)
/// when `redis` is set, else in-process.
pub async fn limiter(
    redis: Option<ratelimit::RedisSettings>,
    when_down: RateLimitWhenDown,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn RateLimiter>, ratelimit::LimiterError> {
    let local = ratelimit::LocalLimiter::new(clock.clone());
    let Some(settings) = redis else {
        return Ok(Arc::new(local));
    };
    let redis = ratelimit::RedisLimiter::connect(settings, clock).await?;
    Ok(Arc::new(ratelimit::GlobalLimiter::new(
        redis,
        local,
        when_down.into(),
    )))
}
