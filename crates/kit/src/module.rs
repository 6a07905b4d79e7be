//! The one shape every module has.
//!
//! Loki and Mimir run many services from one binary by giving each a
//! declaration (its name and the modules it depends on) and letting one
//! registry start them in order. Reliable does the same. A module is a crate
//! that implements [`Module`]:
//!
//! - [`Module::DECLARATION`] says what the binary must know before the
//!   module exists: its name (its `service` metric label, its config section
//!   `[name]` and its `RELIABLE_<NAME>_*` environment variables), the route
//!   prefixes it serves (a co-located gateway builds its in-process pools
//!   from them), the [`Port`]s it needs, and the modules it starts after;
//! - [`Module::Config`] is its config section, validated before anything
//!   opens ([`ModuleConfig::validate`]);
//! - [`Module::start`] opens what it needs from a [`Context`] (the ports the
//!   binary wired, a supervised [`TaskSpawner`], the clock);
//! - the started module gives its router and readiness checks, and stops
//!   with [`Module::shutdown`] after the HTTP server has drained.
//!
//! The binary's registry lists modules one line each; nothing else in the
//! binary knows a module by name.

use crate::config::ConfigError;
use crate::health::ReadinessCheck;
use crate::tasks::TaskSpawner;
use crate::Clock;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A capability a module needs from outside; the binary wires an adapter
/// to each (embedded in `up`, distributed in `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// Relational storage: a SQLite file of its own, or its own schema in
    /// the shared PostgreSQL (`RELIABLE_DATABASE_URL`).
    Database,
    /// The event bus: in-process, or NATS JetStream (`RELIABLE_NATS_URL`).
    Bus,
    /// The rate limiter: in-process, or Redis (`RELIABLE_REDIS_URL`).
    Limiter,
}

impl Port {
    pub fn name(self) -> &'static str {
        match self {
            Port::Database => "database",
            Port::Bus => "bus",
            Port::Limiter => "limiter",
        }
    }
}

/// What the binary knows of a module before starting it.
#[derive(Debug, Clone, Copy)]
pub struct Declaration {
    /// The `service` label, the config section and the env prefix.
    pub name: &'static str,
    /// Path prefixes of its routes (`/` for a catch-all such as the
    /// shortener's `/{slug}`).
    pub prefixes: &'static [&'static str],
    /// Prefixes (among or under `prefixes`) of admin routes: a fronting
    /// gateway asks for an API key with the scope given. `(prefix, scope)`.
    pub scoped_prefixes: &'static [(&'static str, &'static str)],
    /// Ports the binary must wire before starting it.
    pub needs: &'static [Port],
    /// Co-located modules that must start before it (and stop after it).
    pub after: &'static [&'static str],
    /// Fronts the co-located modules (the gateway): starts after all of
    /// them and receives their routers as [`Colocated`].
    pub fronts_others: bool,
    /// The protocol its clients speak: a fronting gateway's own errors on
    /// its routes (401, 429, 413...) carry that protocol's `error` member.
    pub error_dialect: crate::problem::ErrorDialect,
}

/// A module's config section.
pub trait ModuleConfig:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Refuses values that parse but cannot work, naming the key. Called
    /// before anything opens.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Whether `reliable up` starts the module with this config. A module
    /// with nothing to serve until it is configured (the LLM gateway
    /// without backends) says no; `serve --target` starts it regardless,
    /// and its `start` explains what is missing.
    fn configured(&self) -> bool {
        true
    }

    /// What its routes need of the HTTP stack beyond the shared `[http]`
    /// settings (an LLM call outlasts `http.request_timeout`).
    fn http_limits(&self) -> HttpLimits {
        HttpLimits::default()
    }
}

/// A module's own HTTP limits; `None` keeps the shared setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest time one request may take before the platform answers 503
    /// (or a fronting gateway gives up on the response head).
    pub request_timeout: Option<std::time::Duration>,
    /// Largest request body the module accepts.
    pub body_limit_bytes: Option<usize>,
}

impl HttpLimits {
    /// `shared` with these limits applied.
    pub fn apply(&self, shared: &crate::http::HttpConfig) -> crate::http::HttpConfig {
        let mut config = shared.clone();
        if let Some(timeout) = self.request_timeout {
            config.request_timeout = timeout;
        }
        if let Some(limit) = self.body_limit_bytes {
            config.body_limit_bytes = limit;
        }
        config
    }
}

/// Why a module could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A service module of the platform.
pub trait Module: Sized + Send + Sync + 'static {
    const DECLARATION: Declaration;
    type Config: ModuleConfig;

    /// Opens its storage, starts its background tasks on `context.tasks`,
    /// and returns once it can serve.
    fn start(
        config: Self::Config,
        context: Context,
    ) -> impl Future<Output = Result<Self, StartError>> + Send;

    /// Its routes, without the platform middleware (the binary labels and
    /// wraps them).
    fn router(&self) -> Router;

    /// Its routes with their templates, for a front (the gateway): with
    /// them, the server hands the requests for every other path straight
    /// to the module's catch-all ([`crate::http::front`]). The default
    /// does not know them ([`crate::http::Routes::opaque`]), and every
    /// request goes through axum.
    fn routes(&self) -> crate::http::Routes {
        crate::http::Routes::opaque(self.router())
    }

    /// What answers the paths none of its routes match: the gateway's
    /// proxy, when it is the front; the shortener's redirect, for the
    /// one-segment paths. The platform stacks it with
    /// [`crate::http::stack_with_catch_all`] where the module's stack is
    /// its own (alone, or as an in-process pool), and as a route of its
    /// [`crate::http::CatchAll::route`] template beside other modules.
    fn catch_all(&self) -> Option<crate::http::CatchAll> {
        None
    }

    /// What must hold for it to serve (its database, typically).
    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>>;

    /// The OpenAPI document of its routes, generated from its handlers
    /// (no instance needed: `reliable openapi` prints it without starting
    /// anything). A module without an HTTP API returns an empty document.
    fn openapi() -> utoipa::openapi::OpenApi;

    /// A fronting module (the gateway) adds what it may answer on any
    /// route it fronts (429, 502...) to the merged document.
    fn front_openapi(_merged: &mut utoipa::openapi::OpenApi) {}

    /// Flushes buffered work and stops its tasks; called after the HTTP
    /// server has drained.
    fn shutdown(self) -> impl Future<Output = ()> + Send;
}

/// What a module gets to start with.
pub struct Context {
    /// Supervised background tasks of this module.
    pub tasks: TaskSpawner,
    pub clock: Arc<dyn Clock>,
    /// Where its store lives when it needs [`Port::Database`]: a
    /// `sqlite://` file of its own under the data dir, or the shared
    /// PostgreSQL URL (the module's own schema inside).
    pub database_url: Option<String>,
    /// Embedded state directory.
    pub data_dir: PathBuf,
    /// The public base URL of this process (`http://127.0.0.1:8080`).
    pub public_url: String,
    /// The HTTP settings every module shares (`[http]`): body limit,
    /// trusted proxies.
    pub http: crate::http::HttpConfig,
    /// The adapters the binary wired, by type.
    pub ports: Ports,
}

/// A module started in this process, as the fronting module sees it.
#[derive(Clone)]
pub struct Colocated {
    pub name: &'static str,
    pub prefixes: &'static [&'static str],
    /// Its admin prefixes and the scope each needs.
    pub scoped_prefixes: &'static [(&'static str, &'static str)],
    /// Its router inside the platform middleware, with its own `/readyz`
    /// (with its catch-all, the way around axum for the other paths).
    pub router: crate::http::Front,
    /// Its own HTTP limits: the front's routes to it use them.
    pub http_limits: HttpLimits,
    /// The protocol its clients speak (see [`Declaration::error_dialect`]).
    pub error_dialect: crate::problem::ErrorDialect,
}

/// The adapters wired for the modules, found by type (the binary puts an
/// `Arc<dyn Publisher>` in, the orders module takes it out), so kit does
/// not depend on every port's crate.
#[derive(Clone, Default)]
pub struct Ports {
    shared: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
}

impl Ports {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the adapter of type `T`.
    pub fn insert<T: Any + Send>(&self, value: T) {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(TypeId::of::<T>(), Box::new(value));
    }

    /// A copy of the adapter of type `T` (adapters are `Arc`s).
    pub fn get<T: Any + Send + Clone>(&self) -> Result<T, MissingPort> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<T>())
            .cloned()
            .ok_or(MissingPort(std::any::type_name::<T>()))
    }

    /// Takes the adapter of type `T` out, for what only one module may own
    /// (a receiver); `None` if it is not wired.
    pub fn take<T: Any + Send>(&self) -> Option<T> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast::<T>().ok())
            .map(|b| *b)
    }
}

/// A module asked for an adapter the binary did not wire: a registry bug
/// (the module's declaration misses the [`Port`]).
#[derive(Debug, thiserror::Error)]
#[error("no adapter of type {0} is wired; does the module declare the port?")]
pub struct MissingPort(&'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_give_copies_and_take_once() {
        let ports = Ports::new();
        ports.insert(Arc::new(5_u32));
        ports.insert(String::from("receiver"));
        assert_eq!(*ports.get::<Arc<u32>>().unwrap(), 5);
        assert_eq!(*ports.get::<Arc<u32>>().unwrap(), 5);
        assert_eq!(ports.take::<String>().as_deref(), Some("receiver"));
        assert_eq!(ports.take::<String>(), None);
        assert!(ports.get::<Arc<i64>>().is_err());
    }
}
