//! The gateway in front of the co-located modules.
//!
//! In `up` and `serve --target gateway,<modules>` the modules' router
//! (already in kit's stack, so each module keeps its own metrics and
//! traces) is the in-process pool `local`: the gateway calls it without a
//! TCP hop, with the same timeouts, breaker, retries, limits and active
//! `/readyz` checks as a remote pool. Without a route of their own in the
//! config, `/` goes to `local`. Without co-located modules
//! (`serve --target gateway`) the pools are the config's HTTP base URLs.

use crate::settings::Config;
use anyhow::{bail, Context};
use axum::Router;
use gateway::{Gateway, RouteConfig};
use kit::SystemClock;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The pool name of the co-located modules.
pub const LOCAL_POOL: &str = "local";

/// Where the keys live: next to the other embedded state for `up`, in
/// the platform database for `serve`.
pub fn keys_url(database_url: Option<&str>, data_dir: &Path) -> String {
    match database_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", data_dir.join("gateway.db").display()),
    }
}

/// Builds the gateway, with `modules` as the in-process pool `local`.
pub async fn build(
    config: &Config,
    modules: Option<Router>,
    keys_url: &str,
) -> anyhow::Result<Gateway> {
    let mut gateway_config = config.gateway.clone();
    let mut in_process = BTreeMap::new();
    if let Some(modules) = modules {
        in_process.insert(LOCAL_POOL.to_string(), modules);
        if gateway_config.routes.is_empty() {
            gateway_config
                .routes
                .push(RouteConfig::new("/", LOCAL_POOL));
        }
    }
    if gateway_config.routes.is_empty() {
        bail!("the gateway has no routes: add [[gateway.routes]] and [gateway.pools.NAME] to the config file, or co-locate a module (--target gateway,shortener)");
    }
    let keys = gateway::keys::connect(keys_url)
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
