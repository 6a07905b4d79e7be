//! The gateway's configuration, as operators write it (TOML under
//! `[gateway]`, or built in code by tests and `reliable serve`).
//!
//! Everything here is plain data. [`GatewayConfig::validate`] checks it
//! before anything opens (the binary calls it first), naming the key that
//! is wrong (`gateway.pools.api.endpoints[0]`); [`crate::Gateway::build`]
//! then parses it once into the types the request path uses (quotas,
//! CIDRs, URLs), so a typo fails start-up instead of failing requests.

use kit::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use resilience::config::{BreakerConfig, RetryConfig};

/// The whole gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Routes, matched by longest path prefix (then method and host).
    pub routes: Vec<RouteConfig>,
    /// Upstream pools by name.
    pub pools: BTreeMap<String, PoolConfig>,
    /// Peers whose `X-Forwarded-For` is believed. Not a key of its own:
    /// the module takes the shared `http.trusted_proxies` at start (tests
    /// set it in code).
    #[serde(skip)]
    pub trusted_proxies: kit::forwarded::TrustedProxies,
    /// Largest request body forwarded, in bytes (413 beyond), on routes
    /// without a `max_body_bytes` of their own. Not a key of its own: the
    /// module takes the shared `http.body_limit_bytes` at start.
    #[serde(skip)]
    pub max_request_body_bytes: usize,
    /// Whether the gateway's own answers (its errors) carry kit's
    /// security headers. Not a key of its own: the module takes the
    /// shared `http.security_headers` at start. Relayed answers get them
    /// only on routes with `security_headers`.
    #[serde(skip)]
    pub security_headers: bool,
    /// Largest upstream response body relayed, in bytes (502 beyond).
    pub max_response_body_bytes: usize,
    /// Largest total size of the request headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Anonymous (no API key) limit per client IP, `RATE/UNIT[,burst=N]`;
    /// none means anonymous traffic is not limited.
    pub anon_rate: Option<String>,
    /// Limit of a key that carries no rate of its own.
    pub key_rate: Option<String>,
    /// When the shared (Redis) limiter is unreachable: `open` decides per
    /// replica, `closed` answers 503.
    pub rate_limit_when_down: RateLimitWhenDown,
    /// Longest one shared (Redis) limiter decision may take before Redis
    /// counts as down for it (then `rate_limit_when_down` applies and the
    /// limiter reconnects in the background). Low, so a dead or
    /// blackholed Redis costs a request at most this; raise it where a
    /// loaded host answers slowly while Redis is fine (every timeout is a
    /// decision made by one replica alone).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub rate_limit_timeout: Duration,
    /// How long a key found in the store is trusted without asking it
    /// again; a revocation takes effect within this time. `0s` asks the
    /// store on every request.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub key_cache_ttl: Duration,
    pub breaker: BreakerConfig,
    pub retry: RetryConfig,
    pub health: HealthConfig,
    /// The API key database's connection pool (`[gateway.database]`).
    pub database: kit::storage::PoolConfig,
    /// Where the admin API (`/admin/v1/...`: canary splits) is served, on
    /// a listener of its own (e.g. `127.0.0.1:9090`, a private address).
    /// None: not served apart (see `admin_on_public`).
    pub admin_listen: Option<SocketAddr>,
    /// Also serve the admin API on the public listener. Off: a request to
    /// `/admin/v1/...` there is answered 403 by the gateway itself and
    /// never reaches an upstream.
    pub admin_on_public: bool,
    /// How often the canary splits are read back from the database, so
    /// that every replica converges on a split written through any one.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub split_refresh: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            pools: BTreeMap::new(),
            trusted_proxies: Default::default(),
            max_request_body_bytes: kit::http::HttpConfig::default().body_limit_bytes,
            security_headers: kit::http::HttpConfig::default().security_headers,
            max_response_body_bytes: 8 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            anon_rate: None,
            key_rate: None,
            rate_limit_when_down: RateLimitWhenDown::Open,
            rate_limit_timeout: Duration::from_millis(50),
            key_cache_ttl: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            health: HealthConfig::default(),
            database: kit::storage::PoolConfig::with_max_connections(8),
            admin_listen: None,
            admin_on_public: false,
            split_refresh: Duration::from_secs(2),
        }
    }
}

/// What admission does while the shared (Redis) rate limiter is
/// unreachable.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitWhenDown {
    /// Each replica decides with its own in-process limiter (a client may
    /// get up to one allowance per replica meanwhile).
    #[default]
    Open,
    /// Requests that need a rate decision are refused with 503.
    Closed,
}

impl From<RateLimitWhenDown> for ratelimit::WhenDown {
    fn from(when: RateLimitWhenDown) -> Self {
        match when {
            RateLimitWhenDown::Open => ratelimit::WhenDown::FailOpen,
            RateLimitWhenDown::Closed => ratelimit::WhenDown::FailClosed,
        }
    }
}

/// One route: which requests (prefix, method, host) go to which pool(s).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Bounded metric label and log field; defaults to the prefix.
    #[serde(default)]
    pub name: Option<String>,
    /// Path prefix, matched on whole segments (`/api` matches `/api/x`,
    /// not `/apix`).
    pub prefix: String,
    /// Only this method, if set.
    #[serde(default)]
    pub method: Option<String>,
    /// Only this `Host` (without port), if set.
    #[serde(default)]
    pub host: Option<String>,
    /// The pool that takes the traffic.
    pub pool: String,
    /// A second pool taking `canary_percent` of the traffic.
    #[serde(default)]
    pub canary_pool: Option<String>,
    /// The canary's share at start, 0 to 100. A share set at runtime
    /// (`PUT /admin/v1/routes/{name}/split`) is kept in the database and
    /// wins over it while the route keeps the same two pools.
    #[serde(default)]
    pub canary_percent: u8,
    /// Header pinning a request to the canary pool when its value is
    /// `always` (and to the primary when `never`).
    #[serde(default = "default_pin_header")]
    pub canary_header: String,
    /// Scope an API key must carry; none means anonymous is fine.
    #[serde(default)]
    pub scope: Option<String>,
    /// Longest time one upstream attempt may take (504 beyond).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Requests in flight on this route beyond which 503 + Retry-After.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Largest request body forwarded on this route, in bytes (413
    /// beyond); none means `http.body_limit_bytes`. For upload routes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Prefix removed before forwarding (e.g. `/api/links` upstream as
    /// `/links` with `strip_prefix = "/api"`).
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// The protocol the route's clients speak: the gateway's own errors
    /// on it (401, 403, 413, 429, 502...) stay problem+json and add that
    /// protocol's `error` member: `problem` (none), `oip` (`"error":
    /// "..."`), `openai` (`"error": {"message", "type", "code"}`, what
    /// OpenAI SDKs read). Routes to a co-located module take the module's.
    #[serde(default)]
    pub errors: kit::problem::ErrorDialect,
    /// Add kit's security headers (`X-Content-Type-Options: nosniff`, a
    /// `Content-Security-Policy` that loads nothing and allows no framing,
    /// `Referrer-Policy: no-referrer`) to the upstream's answers on this
    /// route, each one the upstream did not set: for JSON APIs that send
    /// none. Off, the upstream's answers pass as they came (an HTML app's
    /// scripts would not load under that policy); the gateway's own
    /// errors carry them either way (unless `http.security_headers` is
    /// off).
    #[serde(default)]
    pub security_headers: bool,
}

fn default_pin_header() -> String {
    "x-canary".to_string()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_concurrency() -> usize {
    1024
}

impl RouteConfig {
    /// A route with defaults: `prefix` to `pool`, anonymous, 5 s timeout.
    pub fn new(prefix: &str, pool: &str) -> Self {
        Self {
            name: None,
            prefix: prefix.to_string(),
            method: None,
            host: None,
            pool: pool.to_string(),
            canary_pool: None,
            canary_percent: 0,
            canary_header: default_pin_header(),
            scope: None,
            timeout: default_timeout(),
            max_concurrency: default_concurrency(),
            max_body_bytes: None,
            strip_prefix: None,
            errors: kit::problem::ErrorDialect::Problem,
            security_headers: false,
        }
    }
}

/// An upstream pool: interchangeable endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Base URLs, `http://host:port` or `https://host[:port]`, without a
    /// path. HTTPS upstreams are verified against the webpki roots (the
    /// public CAs browsers trust) and this pool's `ca_file`.
    pub endpoints: Vec<String>,
    /// A PEM file of CA certificates this pool's HTTPS upstreams may be
    /// signed by, in addition to the public ones (a private or mesh CA).
    /// Per pool, so a private CA is trusted only where it is needed. The
    /// file is read at start-up; a missing or unreadable file stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl PoolConfig {
    /// A pool of `endpoints` trusting only the public CAs.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            ca_file: None,
        }
    }
}

/// Active health checks: `GET <endpoint>/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Zero turns active checks off.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub path: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            path: "/readyz".to_string(),
        }
    }
}

fn above_zero(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be above zero"));
    }
    Ok(())
}

impl GatewayConfig {
    /// Checks everything that needs nothing but the config: sizes, rates,
    /// CIDRs, pools (endpoints parse, CA bundles readable) and each
    /// route's own fields. Which pools routes may name also depends on the
    /// in-process pools: see [`GatewayConfig::validate_pools`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        above_zero(
            "gateway.max_response_body_bytes",
            self.max_response_body_bytes,
        )?;
        above_zero("gateway.max_header_bytes", self.max_header_bytes)?;
        self.database.validate("gateway.database")?;
        crate::quota("gateway.anon_rate", &self.anon_rate)?;
        crate::quota("gateway.key_rate", &self.key_rate)?;
        for (name, pool) in &self.pools {
            pool.validate(&format!("gateway.pools.{name}"))?;
        }
        let mut canary_names = std::collections::BTreeSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let rules = crate::routes::RouteRules::parse(i, route)?;
            // A split is changed by route name: two canary routes of one
            // name could not be told apart.
            if route.canary_pool.is_some() && !canary_names.insert(rules.name().to_string()) {
                return Err(ConfigError::invalid(
                    &format!("gateway.routes[{i}].name"),
                    format!(
                        "another route with a canary pool is named `{}`: give each its own `name`",
                        rules.name()
                    ),
                ));
            }
        }
        if self.rate_limit_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "gateway.rate_limit_timeout",
                "must be above zero",
            ));
        }
        if self.split_refresh.is_zero() {
            return Err(ConfigError::invalid(
                "gateway.split_refresh",
                "must be above zero",
            ));
        }
        if !(0.0..=1.0).contains(&self.retry.budget_ratio) {
            return Err(ConfigError::invalid(
                "gateway.retry.budget_ratio",
                "must be from 0 to 1",
            ));
        }
        if !self.health.interval.is_zero() && self.health.timeout.is_zero() {
            return Err(ConfigError::invalid(
                "gateway.health.timeout",
                "must be above zero while health checks run",
            ));
        }
        if !self.health.path.starts_with('/') {
            return Err(ConfigError::invalid(
                "gateway.health.path",
                "must start with `/`",
            ));
        }
        Ok(())
    }

    /// Checks that every route's pools exist, given the names of the
    /// in-process pools the binary adds, and that no configured pool takes
    /// one of those names.
    pub fn validate_pools(&self, in_process: &[&str]) -> Result<(), ConfigError> {
        for name in self.pools.keys() {
            if in_process.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("gateway.pools.{name}"),
                    "the name is taken by the co-located modules",
                ));
            }
        }
        let known = |name: &str| self.pools.contains_key(name) || in_process.contains(&name);
        for (i, route) in self.routes.iter().enumerate() {
            let pools = [
                ("pool", Some(&route.pool)),
                ("canary_pool", route.canary_pool.as_ref()),
            ];
            for (field, name) in pools {
                if let Some(name) = name.filter(|n| !known(n)) {
                    return Err(ConfigError::invalid(
                        &format!("gateway.routes[{i}].{field}"),
                        format!("no pool named `{name}`"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl PoolConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.endpoints"),
                "a pool needs at least one endpoint",
            ));
        }
        for (i, url) in self.endpoints.iter().enumerate() {
            resilience::BaseUrl::parse(url).map_err(|e| {
                ConfigError::invalid(&format!("{key}.endpoints[{i}]"), e.to_string())
            })?;
        }
        if let Some(path) = &self.ca_file {
            resilience::read_ca_bundle(path)
                .map_err(|e| ConfigError::invalid(&format!("{key}.ca_file"), e.to_string()))?;
        }
        Ok(())
    }
}
