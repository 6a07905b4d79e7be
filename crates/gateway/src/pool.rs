//! Upstream pools: endpoints, their health, and the choice between them.
//!
//! The choice is power of two choices on in-flight requests: pick two
//! endpoints at random among those that can take traffic (breaker admits,
//! last active health check passed) and take the less busy. It avoids
//! herding onto one "least loaded" endpoint that every replica sees at
//! once, and needs no shared state but one counter per endpoint.

use crate::breaker::{Breaker, BreakerState};
use crate::upstream::{Upstream, IN_PROCESS};
use axum::Router;
use http::uri::Scheme;
use kit::Clock;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an http://host:port base URL")]
pub struct BadEndpoint(pub String);

/// One upstream: an HTTP address or an in-process router.
pub struct Endpoint {
    pub upstream: Upstream,
    /// `host:port` as configured, or `in-process`: a bounded metric label.
    pub label: &'static str,
    /// The pool's name (a metric label).
    pub pool: &'static str,
    clock: Arc<dyn Clock>,
    in_flight: AtomicUsize,
    /// Result of the last active health check (true until one fails).
    healthy: AtomicBool,
    breaker: Mutex<Breaker>,
}

impl Endpoint {
    fn new(
        upstream: Upstream,
        label: &'static str,
        pool: &'static str,
        clock: Arc<dyn Clock>,
        breaker: Breaker,
    ) -> Self {
        Self {
            upstream,
            label,
            pool,
            clock,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            breaker: Mutex::new(breaker),
        }
    }

    fn parse(
        url: &str,
        pool: &'static str,
        clock: Arc<dyn Clock>,
        breaker: Breaker,
    ) -> Result<Self, BadEndpoint> {
        let bad = || BadEndpoint(url.to_string());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme() != Some(&Scheme::HTTP) || !matches!(uri.path(), "" | "/") {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        // Endpoints live as long as the process (like route names).
        let label = Box::leak(authority.to_string().into_boxed_str());
        Ok(Self::new(
            Upstream::Http(authority),
            label,
            pool,
            clock,
            breaker,
        ))
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn available(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.healthy.load(Ordering::Acquire) && self.breaker().would_admit(now)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            tracing::warn!(pool = self.pool, endpoint = %self.label, healthy, "endpoint health changed");
            metrics::gauge!("gateway_endpoint_healthy", "gateway_pool" => self.pool, "server_address" => self.label)
                .set(if healthy { 1.0 } else { 0.0 });
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker().state(self.clock.now())
    }

    /// Records an attempt's outcome in the breaker.
    pub fn record(&self, success: bool) {
        let mut breaker = self.breaker();
        let now = self.clock.now();
        let before = breaker.state(now);
        if success {
            breaker.on_success();
        } else {
            breaker.on_failure(now);
        }
        let after = breaker.state(now);
        drop(breaker);
        if before != after {
            tracing::warn!(pool = self.pool, endpoint = %self.label, state = ?after, "circuit breaker changed state");
            metrics::gauge!("gateway_circuit_breaker_state", "gateway_pool" => self.pool, "server_address" => self.label)
                .set(after.as_gauge());
        }
    }
}

/// Holds one in-flight slot of an endpoint until dropped.
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Interchangeable endpoints behind one name.
pub struct Pool {
    pub name: &'static str,
    pub endpoints: Vec<Arc<Endpoint>>,
}

impl Pool {
    pub fn new(
        name: &'static str,
        urls: &[String],
        clock: Arc<dyn Clock>,
        breaker: impl Fn() -> Breaker,
    ) -> Result<Self, BadEndpoint> {
        let endpoints = urls
            .iter()
            .map(|u| Endpoint::parse(u, name, clock.clone(), breaker()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { name, endpoints })
    }

    /// A pool of one in-process endpoint: `router` (the co-located
    /// modules, already wrapped in kit's stack) called without a TCP hop.
    pub fn in_process(
        name: &'static str,
        router: Router,
        clock: Arc<dyn Clock>,
        breaker: Breaker,
    ) -> Self {
        let endpoint = Endpoint::new(
            Upstream::InProcess(router),
            IN_PROCESS,
            name,
            clock,
            breaker,
        );
        Self {
            name,
            endpoints: vec![Arc::new(endpoint)],
        }
    }

    /// Power of two choices among available endpoints, skipping `avoid`
    /// (the endpoint a retry just failed on) when there is another; `None`
    /// when every endpoint is ejected or its breaker open.
    pub fn pick(&self, avoid: Option<&Arc<Endpoint>>) -> Option<InFlight> {
        let now = self.endpoints.first().map(|e| e.clock.now())?;
        let mut candidates: Vec<&Arc<Endpoint>> =
            self.endpoints.iter().filter(|e| e.available(now)).collect();
        if candidates.len() > 1 {
            if let Some(avoid) = avoid {
                candidates.retain(|e| !Arc::ptr_eq(e, avoid));
            }
        }
        // Try the two-choice pick; a lost half-open probe race falls back
        // to the next candidate.
        while !candidates.is_empty() {
            let mut rng = rand::rng();
            let chosen = if candidates.len() == 1 {
                0
            } else {
                let a = rng.random_range(0..candidates.len());
                let mut b = rng.random_range(0..candidates.len() - 1);
                if b >= a {
                    b += 1;
                }
                if candidates[a].in_flight() <= candidates[b].in_flight() {
                    a
                } else {
                    b
                }
            };
            let endpoint = candidates.swap_remove(chosen);
            if endpoint.breaker().try_acquire(now) {
                endpoint.in_flight.fetch_add(1, Ordering::AcqRel);
                return Some(InFlight(endpoint.clone()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(n: usize) -> Pool {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
            .collect();
        Pool::new("p", &urls, Arc::new(kit::SystemClock), || {
            Breaker::new(1, Duration::from_secs(10))
        })
        .unwrap()
    }

    #[test]
    fn rejects_non_http_base_urls() {
        for bad in ["https://a:1", "http://a:1/path", "nonsense", "a:1"] {
            assert!(
                Pool::new("p", &[bad.to_string()], Arc::new(kit::SystemClock), || {
                    Breaker::new(1, Duration::from_secs(1))
                })
                .is_err(),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn prefers_the_less_busy_endpoint() {
        let pool = pool(2);
        let held: Vec<InFlight> = (0..3).map(|_| pool.pick(None).unwrap()).collect();
        // With two endpoints p2c always compares both: loads stay within one.
        let a = pool.endpoints[0].in_flight();
        let b = pool.endpoints[1].in_flight();
        assert!(a.abs_diff(b) <= 1, "{a} vs {b}");
        drop(held);
        assert_eq!(
            pool.endpoints[0].in_flight() + pool.endpoints[1].in_flight(),
            0
        );
    }

    #[tokio::test]
    async fn skips_open_breakers_and_unhealthy_endpoints() {
        let pool = pool(3);
        pool.endpoints[0].record(false);
        pool.endpoints[1].set_healthy(false);
        for _ in 0..20 {
            let chosen = pool.pick(None).unwrap();
            assert!(Arc::ptr_eq(chosen.endpoint(), &pool.endpoints[2]));
        }
        pool.endpoints[2].record(false);
        assert!(pool.pick(None).is_none());
    }
}
