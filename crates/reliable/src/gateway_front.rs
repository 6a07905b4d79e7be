//! The gateway in front of the co-located modules.
//!
//! In `up` and `serve --target gateway,<modules>` the co-located modules
//! are in-process pools (routers already in kit's stack, so each module
//! keeps its own metrics and traces): the gateway calls them without a
//! TCP hop, with the same timeouts, breakers, retries, limits and active
//! `/readyz` checks as a remote pool. The shortener (with health, metrics
//! and SLO status) is the pool `local`, reached by `/`; orders and the
//! notifier are the pool `events`, reached by their API prefixes. Two
//! pools mean two breakers: a failing order path cannot fail redirects
//! fast, and the other way round. Config routes replace these defaults.
//! Without co-located modules (`serve --target gateway`) the pools are
//! the config's HTTP base URLs.

use crate::settings::Config;
use anyhow::{bail, Context};
use axum::Router;
use gateway::{Gateway, RouteConfig};
use kit::SystemClock;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The pool of the co-located shortener, health, metrics and SLO routes.
pub const LOCAL_POOL: &str = "local";
/// The pool of the co-located orders and notifier modules.
pub const EVENTS_POOL: &str = "events";
/// The path prefixes of the `events` pool.
const EVENTS_PREFIXES: [&str; 2] = ["/api/v1/orders", "/api/v1/notifications"];

/// The co-located modules, as the gateway's in-process pools.
pub struct Colocated {
    /// Shortener, health, metrics, SLO status.
    pub local: Router,
    /// Orders and notifier, when either runs here.
    pub events: Option<Router>,
}

/// Where the keys live: next to the other embedded state for `up`, in
/// the platform database for `serve`.
pub fn keys_url(database_url: Option<&str>, data_dir: &Path) -> String {
    match database_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", data_dir.join("gateway.db").display()),
    }
}

/// Builds the gateway, with the co-located modules as in-process pools.
pub async fn build(
    config: &Config,
    modules: Option<Colocated>,
    keys_url: &str,
) -> anyhow::Result<Gateway> {
    let mut gateway_config = config.gateway.clone();
    let mut in_process = BTreeMap::new();
    if let Some(modules) = modules {
        let default_routes = gateway_config.routes.is_empty();
        in_process.insert(LOCAL_POOL.to_string(), modules.local);
        if default_routes {
            gateway_config
                .routes
                .push(RouteConfig::new("/", LOCAL_POOL));
        }
        if let Some(events) = modules.events {
            in_process.insert(EVENTS_POOL.to_string(), events);
            if default_routes {
                for prefix in EVENTS_PREFIXES {
                    gateway_config
                        .routes
                        .push(RouteConfig::new(prefix, EVENTS_POOL));
                }
            }
        }
    }
    if gateway_config.routes.is_empty() {
        bail!("the gateway has no routes: add [[gateway.routes]] and [gateway.pools.NAME] to the config file, or co-locate a module (--target gateway,shortener)");
    }
    let keys = gateway::keys::connect(keys_url, &config.gateway.database)
        .await
        .context("opening the API key database")?;
    let redis = config
        .redis_url
        .as_deref()
        .map(ratelimit::RedisSettings::new);
    let limiter = gateway::limiter(
        redis,
        &config.gateway.rate_limit_when_down,
        Arc::new(SystemClock),
    )
    .await
    .context("setting up the rate limiter")?;
    Gateway::build(
        gateway_config,
        in_process,
        Some(keys),
        limiter,
        Arc::new(SystemClock),
    )
    .context("building the gateway")
}
