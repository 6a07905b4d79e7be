//! The route table, compiled once from [`crate::config`].
//!
//! A request goes to the route with the longest matching prefix; among
//! equal prefixes a route naming the method or host wins over one that
//! does not. The pool is chosen per request: pinned by the route's
//! canary header (`always` / `never`), else at random by the canary's
//! share: `canary_percent` at first, changed at runtime through
//! [`crate::splits`], read with one atomic load.

use crate::config::RouteConfig;
use crate::keys::Scope;
use crate::path::CleanPath;
use crate::splits::FULL_SHARE;
use crate::Pool;
use http::{HeaderMap, HeaderName, Method};
use kit::config::ConfigError;
use rand::Rng;
use resilience::RetryBudget;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A route's own fields, parsed: what [`crate::GatewayConfig::validate`]
/// checks and [`Route::compile`] uses, so both agree by construction.
pub(crate) struct RouteRules {
    name: String,
    prefix: String,
    method: Option<Method>,
    scope: Option<Scope>,
    pin_header: HeaderName,
}

impl RouteRules {
    /// The route's name: its own, else its prefix.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn parse(index: usize, config: &RouteConfig) -> Result<Self, ConfigError> {
        let invalid = |field: &str, reason: &str| {
            ConfigError::invalid(&format!("gateway.routes[{index}].{field}"), reason)
        };
        let prefix = CleanPath::parse(&config.prefix)
            .map_err(|e| invalid("prefix", &e.to_string()))?
            .as_str()
            .trim_end_matches('/')
            .to_string();
        if config.canary_percent > 100 {
            return Err(invalid("canary_percent", "must be 0 to 100"));
        }
        let method = config
            .method
            .as_deref()
            .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
            .transpose()
            .map_err(|_| invalid("method", "not an HTTP method"))?;
        let scope = config
            .scope
            .as_deref()
            .map(Scope::parse)
            .transpose()
            .map_err(|e| invalid("scope", &e.to_string()))?;
        let pin_header = HeaderName::from_bytes(config.canary_header.as_bytes())
            .map_err(|_| invalid("canary_header", "not a header name"))?;
        if config.timeout.is_zero() {
            return Err(invalid("timeout", "must be above zero"));
        }
        if config.max_concurrency == 0 || config.max_concurrency > 1_000_000 {
            return Err(invalid("max_concurrency", "must be from 1 to 1000000"));
        }
        if config.max_body_bytes == Some(0) {
            return Err(invalid("max_body_bytes", "must be above zero"));
        }
        let name = config.name.clone().unwrap_or_else(|| {
            if prefix.is_empty() {
                "/".to_string()
            } else {
                prefix.clone()
            }
        });
        Ok(Self {
            name,
            prefix,
            method,
            scope,
            pin_header,
        })
    }
}

pub struct Route {
    /// Bounded metric label.
    pub name: &'static str,
    prefix: String,
    method: Option<Method>,
    host: Option<String>,
    primary: Arc<Pool>,
    canary: Option<Arc<Pool>>,
    /// The canary's share in hundredths of a percent (0..=10000), shared
    /// with [`crate::splits`], which changes it at runtime.
    canary_share: Arc<AtomicU32>,
    pin_header: HeaderName,
    pub scope: Option<Scope>,
    pub timeout: Duration,
    pub concurrency: Arc<Semaphore>,
    /// Largest request body forwarded (the route's own or the default).
    pub max_body_bytes: usize,
    pub retry_budget: RetryBudget,
    strip_prefix: Option<String>,
    /// The prefix as the upstream sees it (after `strip_prefix`): the path
    /// the CLIENT spans show, which is configuration and never client data.
    upstream_prefix: String,
    /// The `error` member of the gateway's own errors on this route.
    pub errors: kit::problem::ErrorDialect,
    /// Add kit's security headers to relayed answers that lack them.
    pub security_headers: bool,
}

impl Route {
    pub fn compile(
        index: usize,
        config: &RouteConfig,
        pools: &BTreeMap<String, Arc<Pool>>,
        retry_budget: RetryBudget,
        default_max_body_bytes: usize,
    ) -> Result<Self, ConfigError> {
        let rules = RouteRules::parse(index, config)?;
        let pool = |name: &str, field: &str| {
            pools.get(name).cloned().ok_or_else(|| {
                ConfigError::invalid(
                    &format!("gateway.routes[{index}].{field}"),
                    format!("no pool named `{name}`"),
                )
            })
        };
        let primary = pool(&config.pool, "pool")?;
        let canary = config
            .canary_pool
            .as_deref()
            .map(|name| pool(name, "canary_pool"))
            .transpose()?;
        Ok(Self {
            // Routes live as long as the process; a leaked name is a
            // `&'static str` label without a per-request allocation.
            name: Box::leak(rules.name.into_boxed_str()),
            prefix: rules.prefix,
            method: rules.method,
            host: config.host.as_ref().map(|h| h.to_ascii_lowercase()),
            primary,
            canary,
            canary_share: Arc::new(AtomicU32::new(
                u32::from(config.canary_percent) * (FULL_SHARE / 100),
            )),
            pin_header: rules.pin_header,
            scope: rules.scope,
            timeout: config.timeout,
            concurrency: Arc::new(Semaphore::new(config.max_concurrency)),
            max_body_bytes: config.max_body_bytes.unwrap_or(default_max_body_bytes),
            retry_budget,
            strip_prefix: config.strip_prefix.clone(),
            upstream_prefix: upstream_prefix(&config.prefix, config.strip_prefix.as_deref()),
            errors: config.errors,
            security_headers: config.security_headers,
        })
    }

    fn matches(&self, path: &CleanPath, method: &Method, host: Option<&str>) -> bool {
        path.has_trimmed_prefix(&self.prefix)
            && self.method.as_ref().is_none_or(|m| m == method)
            && self.host.as_deref().is_none_or(|h| Some(h) == host)
    }

    /// Longer prefix first; then a route naming the method or host; then,
    /// on an exact tie, the one asking for a scope, so a module that lists a
    /// prefix both plain and scoped is never served without its key.
    fn specificity(&self) -> (usize, bool, bool, bool) {
        (
            self.prefix.len(),
            self.method.is_some(),
            self.host.is_some(),
            self.scope.is_some(),
        )
    }

    /// The pool for this request: pinned by header, else weighted at random.
    pub fn choose_pool(&self, headers: &HeaderMap) -> &Arc<Pool> {
        let Some(canary) = &self.canary else {
            return &self.primary;
        };
        match headers.get(&self.pin_header).map(|v| v.as_bytes()) {
            Some(b"always") => return canary,
            Some(b"never") => return &self.primary,
            _ => {}
        }
        let share = self.canary_share.load(Ordering::Relaxed);
        if takes_canary(share, || rand::rng().random_range(0..FULL_SHARE)) {
            canary
        } else {
            &self.primary
        }
    }

    /// With a canary pool: the two pools' names and the share cell.
    pub(crate) fn split(&self) -> Option<(&'static str, &'static str, Arc<AtomicU32>)> {
        let canary = self.canary.as_ref()?;
        Some((self.primary.name, canary.name, self.canary_share.clone()))
    }

    /// The upstream path for `path`, with `strip_prefix` applied.
    pub fn upstream_prefix(&self) -> &str {
        &self.upstream_prefix
    }

    /// Takes the path: without `strip_prefix` it is the upstream path
    /// as it is, not a copy.
    pub fn upstream_path(&self, path: CleanPath) -> String {
        match &self.strip_prefix {
            Some(prefix) => path.without_prefix(prefix),
            None => path.into_string(),
        }
    }
}

/// Whether an unpinned request goes to the canary at `share` hundredths
/// of a percent, given a uniform `roll` in `0..FULL_SHARE` (only drawn
/// between 0% and 100%: those two never depend on chance).
fn takes_canary(share: u32, roll: impl FnOnce() -> u32) -> bool {
    share >= FULL_SHARE || (share > 0 && roll() < share)
}

fn upstream_prefix(prefix: &str, strip: Option<&str>) -> String {
    let rest = strip
        .map(|s| s.trim_end_matches('/'))
        .and_then(|s| prefix.strip_prefix(s))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    match rest {
        Some("") => "/".to_string(),
        Some(rest) => rest.to_string(),
        None => prefix.to_string(),
    }
}

/// All routes, most specific first.
pub struct RouteTable(Vec<Route>);

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        Self(routes)
    }

    pub fn find(&self, path: &CleanPath, method: &Method, host: Option<&str>) -> Option<&Route> {
        self.0.iter().find(|r| r.matches(path, method, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_decides_by_the_roll_and_the_ends_never_roll() {
        let never = || -> u32 { panic!("rolled at 0% or 100%") };
        assert!(!takes_canary(0, never));
        assert!(takes_canary(FULL_SHARE, never));
        // 0.01%: only the lowest roll of 10000 goes to the canary.
        assert!(takes_canary(1, || 0));
        assert!(!takes_canary(1, || 1));
        let share = 3_000;
        let hits = (0..FULL_SHARE)
            .filter(|r| takes_canary(share, || *r))
            .count();
        assert_eq!(hits, 3_000, "30% of the possible rolls");
    }
}
