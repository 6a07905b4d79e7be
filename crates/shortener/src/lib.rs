//! The URL shortener module.
//!
//! - [`domain`]: slugs, target URLs, tags, links and visits, parsed once;
//! - [`storage`]: the [`LinkStore`](storage::LinkStore) port with SQLite
//!   and PostgreSQL adapters and their migrations;
//! - `cache`: the hot-slug cache, invalidated on change;
//! - `visits`: batched visit recording off the redirect path;
//! - `visit_upkeep`: day partitions ahead of the clock, and retention;
//! - `http`: the links API and the redirect handler.
//!
//! [`Shortener`] is the module as the binary sees it: build it from a
//! config, a store and a clock, mount its router, register its readiness
//! check, and call [`Shortener::shutdown`] after the HTTP server has
//! drained so buffered visits are written.
#![forbid(unsafe_code)]

mod cache;
pub mod config;
pub mod domain;
mod http;
mod module;
mod state;
pub mod storage;
mod visit_upkeep;
mod visits;

pub use config::ShortenerConfig;

use axum::Router;
use domain::TargetPolicy;
use kit::config::ConfigError;
use kit::health::ReadinessCheck;
use kit::storage::DatabaseReady;
use kit::tasks::{OnFailure, TaskSpawner};
use kit::Clock;
use state::{AppState, Metrics};
use std::sync::Arc;
use storage::{ChangeFeed, LinkChange, LinkStore, StoreError, VisitMaintenance};
use visit_upkeep::VisitUpkeep;
use visits::{RecorderSettings, VisitRecorder};

pub const SERVICE: &str = "shortener";

/// A running shortener module.
pub struct Shortener {
    state: Arc<AppState>,
    upkeep: Arc<VisitUpkeep>,
    tasks: TaskSpawner,
}

impl Shortener {
    /// Starts the module's background work (visit writer, change feed) on
    /// `tasks`. `default_base_url` is used when the config names no
    /// `base_url`; an error when the one used is not an http(s) URL with a
    /// host (its host is the short domain no link may point back at).
    pub async fn build(
        config: ShortenerConfig,
        store: Arc<dyn LinkStore>,
        clock: Arc<dyn Clock>,
        default_base_url: &str,
        tasks: TaskSpawner,
    ) -> Result<Self, ConfigError> {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| default_base_url.to_string())
            .trim_end_matches('/')
            .to_string();
        let targets = TargetPolicy::new(&base_url, config.allow_private_targets)
            .map_err(|e| ConfigError::invalid("shortener.base_url", e.to_string()))?;
        kit::metrics::install();
        let recorder = VisitRecorder::spawn(
            store.clone(),
            RecorderSettings {
                batch_size: config.visit_batch_size,
                flush_interval: config.visit_flush_interval,
                buffer: config.visit_buffer,
                shutdown_timeout: config.visit_shutdown_timeout,
                anonymize_ips: config.anonymize_ips,
            },
            &tasks,
        );
        let upkeep = Arc::new(VisitUpkeep::new(
            store.clone(),
            clock.clone(),
            config.visit_retention,
        ));
        upkeep.clone().spawn(&tasks);
        let trusted = config.trusted_proxies.clone();
        let state = Arc::new(AppState {
            cache: cache::LinkCache::new(config.cache_capacity, config.cache_ttl)
                .with_settle(store.read_staleness()),
            store: store.clone(),
            recorder,
            clock,
            config,
            trusted,
            base_url,
            targets,
            metrics: Metrics::new(),
        });
        if let Some(work) = store.background(tasks.stop_token()) {
            // A read replica's lag measurement: without it every look-up
            // reads the primary, which is safe; it never ends before stop.
            tasks.spawn("read-replica-lag", OnFailure::Unready, async move {
                work.await;
                Ok::<(), std::convert::Infallible>(())
            });
        }
        if let Some(ChangeFeed { mut changes, pump }) = store.watch_changes() {
            // The store spawns nothing; its listener runs here, supervised
            // and stopped with the module.
            let pump_stop = tasks.stop_token();
            tasks.spawn("change-feed", OnFailure::Unready, async move {
                tokio::select! {
                    ended = pump => ended,
                    () = pump_stop.cancelled() => Ok(()),
                }
            });
            let state = state.clone();
            let stop = tasks.stop_token();
            // Without the feed, other replicas' edits go unseen until the
            // cache TTL: serve, but leave the rotation.
            tasks.spawn("cache-invalidation", OnFailure::Unready, async move {
                loop {
                    tokio::select! {
                        change = changes.recv() => match change {
                            Some(LinkChange::Changed(slug)) => state.cache.invalidate(&slug),
                            Some(LinkChange::Reset) => state.cache.clear(),
                            None => return Err("the change feed ended"),
                        },
                        () = stop.cancelled() => return Ok(()),
                    }
                }
            });
        }
        Ok(Self {
            state,
            upkeep,
            tasks,
        })
    }

    /// The module's routes, the redirect at `/{slug}` included, without
    /// the platform middleware (wrap them once with `kit::http::stack`).
    pub fn router(&self) -> Router {
        http::routes(self.state.clone())
    }

    /// The links API without the redirect, which is then
    /// [`Shortener::redirect_catch_all`]: how the platform serves the
    /// module, with `kit::http::stack_with_catch_all`.
    pub fn api_router(&self) -> Router {
        self.api_routes().into()
    }

    /// [`Shortener::api_router`] with its templates, so that a server in
    /// front of it can hand the other paths straight to the redirect
    /// (`kit::http::front`).
    pub fn api_routes(&self) -> kit::http::Routes {
        http::api_routes(self.state.clone())
    }

    /// The redirect, answering every one-segment path that no route of
    /// the stack matches (observed under `/{slug}`, as the route).
    pub fn redirect_catch_all(&self) -> kit::http::CatchAll {
        http::redirect_catch_all(self.state.clone())
    }

    /// `shortener-database`: ready while the link database answers.
    pub fn readiness_check(&self) -> Arc<dyn ReadinessCheck> {
        Arc::new(DatabaseReady::new(SERVICE, self.state.store.pool()))
    }

    /// Writes every visit recorded so far (operators: before a backup;
    /// tests: before reading analytics).
    pub async fn flush_visits(&self) {
        self.state.recorder.flush().await;
    }

    /// Runs one round of visit upkeep now, at the module clock's time:
    /// day partitions ahead, retention (it also runs hourly by itself).
    pub async fn maintain_visits(&self) -> Result<VisitMaintenance, StoreError> {
        self.upkeep.run_once().await
    }

    /// Writes every buffered visit and stops background work. Call after
    /// the HTTP server stopped accepting and drained in-flight requests.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}
