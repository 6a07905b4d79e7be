//! The gateway in front of the co-located modules.
//!
//! With `--target gateway,shortener` the modules serve on a private
//! loopback listener and the gateway takes the public address, so every
//! public request gets its routing, keys, rate limits and resilience; the
//! loopback hop keeps one code path for co-located and remote upstreams
//! (a pool named `local`, with active checks against the modules'
//! `/readyz`). Without co-located modules the pools come from config.

use crate::settings::Config;
use anyhow::{bail, Context};
use axum::Router;
use gateway::{Gateway, PoolConfig, RouteConfig};
use kit::server::HttpServer;
use kit::{CancellationToken, SystemClock};
use std::net::SocketAddr;
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

/// A running front: the public router and the private listener's handle.
pub struct Front {
    pub router: Router,
    pub gateway: Gateway,
    internal: Option<(
        CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
}

impl Front {
    /// Serves `modules` (already wrapped in kit's stack) on a loopback
    /// port when there are any, and builds the gateway in front of them.
    pub async fn start(
        config: &Config,
        modules: Option<Router>,
        keys_url: &str,
    ) -> anyhow::Result<Self> {
        let mut gateway_config = config.gateway.clone();
        let mut internal = None;
        if let Some(modules) = modules {
            let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("binding the modules' loopback listener")?;
            let addr = server.local_addr();
            let token = CancellationToken::new();
            let task = tokio::spawn(server.serve(modules, token.clone()));
            internal = Some((token, task));
            gateway_config
                .pools
                .entry(LOCAL_POOL.to_string())
                .or_insert_with(|| PoolConfig {
                    endpoints: vec![format!("http://{addr}")],
                });
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
        let gateway = Gateway::build(gateway_config, Some(keys), limiter, Arc::new(SystemClock))
            .context("building the gateway")?;
        Ok(Self {
            router: gateway.router(),
            gateway,
            internal,
        })
    }

    /// After the public listener has drained: drain the modules' listener.
    pub async fn stop(self) {
        if let Some((token, task)) = self.internal {
            token.cancel();
            let _ = task.await;
        }
    }
}
