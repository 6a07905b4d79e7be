//! The module registry: every module this binary can run, one line each.
//!
//! A line names the module's config section and its type; the
//! [`platform_config`](crate::settings::platform_config) macro turns the
//! list into the [`Config`] struct (one section per module) and
//! [`MODULES`], which the platform starts in dependency order. Adding a
//! module is its crate plus one line here (docs/contributing/adding-a-module.md).

use futures::future::BoxFuture;
use kit::health::ReadinessCheck;
use kit::module::{Context, Declaration, Module, StartError};
use std::sync::Arc;

crate::settings::platform_config! {
    shortener: shortener::Shortener,
    orders: orders::Orders,
    notifier: notifier::Notifier,
    inference: inference::Inference,
    llm: llm::Llm,
    canary: canary::CanaryModule,
    gateway: gateway::GatewayModule,
}

/// A module being started, whatever its type.
pub type Starting = BoxFuture<'static, Result<Box<dyn Running>, StartError>>;

/// A registered module: its declaration and how to start it.
pub struct Entry {
    pub declaration: Declaration,
    pub start: fn(&Config, Context) -> Starting,
    /// Its OpenAPI document.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// What it adds to the merged document when it fronts the others.
    pub front_openapi: fn(&mut utoipa::openapi::OpenApi),
    /// Whether `up` starts it with this config.
    pub configured: fn(&Config) -> bool,
    /// Its own HTTP limits.
    pub http_limits: fn(&Config) -> kit::module::HttpLimits,
}

/// A started module, whatever its type.
pub trait Running: Send + Sync {
    fn router(&self) -> axum::Router;
    fn routes(&self) -> kit::http::Routes;
    fn catch_all(&self) -> Option<kit::http::CatchAll>;
    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>>;
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl<M: Module> Running for M {
    fn router(&self) -> axum::Router {
        Module::router(self)
    }

    fn routes(&self) -> kit::http::Routes {
        Module::routes(self)
    }

    fn catch_all(&self) -> Option<kit::http::CatchAll> {
        Module::catch_all(self)
    }

    fn readiness_checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        Module::readiness_checks(self)
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Module::shutdown(*self))
    }
}

pub fn start<M: Module>(config: M::Config, context: Context) -> Starting {
    Box::pin(async move {
        let module = M::start(config, context).await?;
        Ok(Box::new(module) as Box<dyn Running>)
    })
}

/// Names accepted by `--target`: every module, and `all`.
pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|e| e.declaration.name).collect()
}

/// `entries` in start order: each after the modules it names in `after`
/// (when they are among `entries`), fronting modules last. Stop order is
/// the reverse.
pub fn start_order(entries: &[&'static Entry]) -> Vec<&'static Entry> {
    let mut ordered: Vec<&'static Entry> = Vec::new();
    let mut pending: Vec<&'static Entry> = entries
        .iter()
        .copied()
        .filter(|e| !e.declaration.fronts_others)
        .collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|e| {
            e.declaration.after.iter().all(|dep| {
                ordered.iter().any(|o| o.declaration.name == *dep)
                    || !pending.iter().any(|p| p.declaration.name == *dep)
            })
        });
        // A cycle cannot be declared by accident silently: start the rest
        // in registry order.
        let next = ready.unwrap_or(0);
        ordered.push(pending.remove(next));
    }
    ordered.extend(
        entries
            .iter()
            .copied()
            .filter(|e| e.declaration.fronts_others),
    );
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_of(names: &[&str]) -> Vec<&'static str> {
        let entries: Vec<_> = names
            .iter()
            .filter_map(|n| MODULES.iter().find(|e| e.declaration.name == *n))
            .collect();
        start_order(&entries)
            .iter()
            .map(|e| e.declaration.name)
            .collect()
    }

    #[test]
    fn dependencies_start_first_and_the_front_last() {
        assert_eq!(
            order_of(&["gateway", "notifier", "orders", "shortener"]),
            ["orders", "notifier", "shortener", "gateway"]
        );
        assert_eq!(order_of(&["notifier"]), ["notifier"]);
    }

    #[test]
    fn every_module_has_a_distinct_name_and_known_dependencies() {
        let names = names();
        for entry in MODULES {
            assert_eq!(
                names
                    .iter()
                    .filter(|n| **n == entry.declaration.name)
                    .count(),
                1
            );
            for dep in entry.declaration.after {
                assert!(names.contains(dep), "{dep}");
            }
        }
    }
}
