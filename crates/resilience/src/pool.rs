//! Endpoint pools: interchangeable endpoints, their health, and the
//! choice between them.
//!
//! The choice is power of two choices on in-flight calls: pick two
//! endpoints at random among those that can take traffic (breaker admits,
//! last active health check passed) and take the less busy. Endpoints may
//! carry weights: the two are drawn in proportion to weight and compared
//! on in-flight calls per unit of weight, so an endpoint of weight 3 takes
//! about three times the traffic of one of weight 1 at equal latency. It avoids
//! herding onto one "least loaded" endpoint that every replica sees at
//! once, and needs no shared state but one counter per endpoint.
//!
//! A pool does not know how to call its endpoints: `T` is whatever the
//! caller needs to reach one (a [`crate::BaseUrl`], an in-process router,
//! a gRPC channel). Any client picks an endpoint, makes its call while
//! holding the [`InFlight`] slot, and records the outcome.

use crate::breaker::{Breaker, BreakerState};
use chrono::{DateTime, Utc};
use kit::Clock;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The metric names a pool reports its endpoints' state under, so each
/// caller keeps its own namespace (`gateway_circuit_breaker_state`,
/// `llm_circuit_breaker_state`, ...). Both gauges carry the pool's name
/// (under `pool_label`) and the endpoint's `server_address`.
#[derive(Debug, Clone, Copy)]
pub struct PoolMetrics {
    /// Gauge: 0 closed, 1 open, 2 half-open.
    pub breaker_state: &'static str,
    /// Gauge: 1 while the last active health check passed.
    pub endpoint_healthy: &'static str,
    /// Label key of the pool's name.
    pub pool_label: &'static str,
}

/// One endpoint: how to reach it, its in-flight count, health and breaker.
pub struct Endpoint<T> {
    pub target: T,
    /// A bounded metric label (`host:port` as configured, `in-process`).
    pub label: &'static str,
    /// The pool's name (a metric label).
    pub pool: &'static str,
    clock: Arc<dyn Clock>,
    metrics: PoolMetrics,
    in_flight: AtomicUsize,
    /// Share of traffic relative to the pool's other endpoints (1 unless
    /// built with [`Pool::new_weighted`]).
    weight: u32,
    /// Result of the last active health check (true until one fails).
    healthy: AtomicBool,
    breaker: Mutex<Breaker>,
}

impl<T> Endpoint<T> {
    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn available(&self, now: DateTime<Utc>) -> bool {
        self.healthy.load(Ordering::Acquire) && self.breaker().would_admit(now)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Sets the result of an active health check.
    pub fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            tracing::warn!(pool = self.pool, endpoint = %self.label, healthy, "endpoint health changed");
            metrics::gauge!(self.metrics.endpoint_healthy, self.metrics.pool_label => self.pool, "server_address" => self.label)
                .set(if healthy { 1.0 } else { 0.0 });
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker().state(self.clock.now())
    }

    /// Records a call's outcome in the breaker.
    pub fn record(&self, success: bool) {
        let mut breaker = self.breaker();
        if success && breaker.is_closed() {
            // Closed stays closed: no time to read, no change to report
            // (a clock read and two state checks were ~200 instructions).
            breaker.on_success();
            return;
        }
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
            metrics::gauge!(self.metrics.breaker_state, self.metrics.pool_label => self.pool, "server_address" => self.label)
                .set(after.as_gauge());
        }
    }
}

/// Holds one in-flight slot of an endpoint until dropped. A streamed
/// response keeps its slot until its body ends, so a long stream counts
/// as load.
pub struct InFlight<T>(Arc<Endpoint<T>>);

impl<T> InFlight<T> {
    pub fn endpoint(&self) -> &Arc<Endpoint<T>> {
        &self.0
    }
}

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Interchangeable endpoints behind one name.
pub struct Pool<T> {
    pub name: &'static str,
    pub endpoints: Vec<Arc<Endpoint<T>>>,
}

impl<T> Pool<T> {
    /// A pool of `(target, label)` endpoints, each with a breaker from
    /// `breaker`. Names and labels are metric labels: `&'static` because
    /// they live as long as the process and are used on every call.
    pub fn new(
        name: &'static str,
        endpoints: impl IntoIterator<Item = (T, &'static str)>,
        clock: Arc<dyn Clock>,
        breaker: impl Fn() -> Breaker,
        metrics: PoolMetrics,
    ) -> Self {
        Self::new_weighted(
            name,
            endpoints.into_iter().map(|(t, label)| (t, label, 1)),
            clock,
            breaker,
            metrics,
        )
    }

    /// [`Pool::new`] with a weight per endpoint (`(target, label,
    /// weight)`); a weight of 0 counts as 1.
    pub fn new_weighted(
        name: &'static str,
        endpoints: impl IntoIterator<Item = (T, &'static str, u32)>,
        clock: Arc<dyn Clock>,
        breaker: impl Fn() -> Breaker,
        metrics: PoolMetrics,
    ) -> Self {
        let endpoints = endpoints
            .into_iter()
            .map(|(target, label, weight)| {
                Arc::new(Endpoint {
                    target,
                    label,
                    pool: name,
                    clock: clock.clone(),
                    metrics,
                    in_flight: AtomicUsize::new(0),
                    weight: weight.max(1),
                    healthy: AtomicBool::new(true),
                    breaker: Mutex::new(breaker()),
                })
            })
            .collect();
        Self { name, endpoints }
    }

    /// Power of two choices among available endpoints, skipping `avoid`
    /// (the endpoint a retry just failed on) when there is another; `None`
    /// when every endpoint is ejected or its breaker open.
    pub fn pick(&self, avoid: Option<&Arc<Endpoint<T>>>) -> Option<InFlight<T>> {
        // One endpoint (an in-process module, a single upstream) has no
        // choice to make and nothing to avoid in favour of another: no
        // candidate list is built (~165 instructions a call).
        if let [only] = self.endpoints.as_slice() {
            if !only.is_healthy() {
                return None;
            }
            // A closed breaker admits whatever the time: the clock is read
            // only for an open or half-open one (`try_acquire` alone is
            // `would_admit` and the claim of a half-open probe).
            let admitted = {
                let mut breaker = only.breaker();
                breaker.is_closed() || breaker.try_acquire(only.clock.now())
            };
            if !admitted {
                return None;
            }
            only.in_flight.fetch_add(1, Ordering::AcqRel);
            return Some(InFlight(only.clone()));
        }
        let now = self.endpoints.first().map(|e| e.clock.now())?;
        let mut candidates: Vec<&Arc<Endpoint<T>>> =
            self.endpoints.iter().filter(|e| e.available(now)).collect();
        if candidates.len() > 1 {
            if let Some(avoid) = avoid {
                candidates.retain(|e| !Arc::ptr_eq(e, avoid));
            }
        }
        // Try the two-choice pick; a lost half-open probe race falls back
        // to the next candidate.
        while !candidates.is_empty() {
            let chosen = if candidates.len() == 1 {
                0
            } else {
                let a = draw(&candidates, None);
                let b = draw(&candidates, Some(a));
                // Less busy per unit of weight: in_a / w_a <= in_b / w_b.
                let (ea, eb) = (candidates[a], candidates[b]);
                let busy_a = ea.in_flight() as u64 * u64::from(eb.weight);
                let busy_b = eb.in_flight() as u64 * u64::from(ea.weight);
                if busy_a <= busy_b {
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

/// An index into `candidates` drawn in proportion to weight, other than
/// `except`.
fn draw<T>(candidates: &[&Arc<Endpoint<T>>], except: Option<usize>) -> usize {
    let weight = |i: usize| {
        if Some(i) == except {
            0
        } else {
            u64::from(candidates[i].weight)
        }
    };
    let total: u64 = (0..candidates.len()).map(weight).sum();
    let mut point = rand::rng().random_range(0..total.max(1));
    for i in 0..candidates.len() {
        let w = weight(i);
        if point < w {
            return i;
        }
        point -= w;
    }
    // Unreachable with a positive total; the last non-excluded otherwise.
    (0..candidates.len())
        .rev()
        .find(|i| Some(*i) != except)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const METRICS: PoolMetrics = PoolMetrics {
        breaker_state: "test_circuit_breaker_state",
        endpoint_healthy: "test_endpoint_healthy",
        pool_label: "test_pool",
    };

    fn pool(n: usize) -> Pool<usize> {
        Pool::new(
            "p",
            (0..n).map(|i| (i, "e")),
            Arc::new(kit::SystemClock),
            || Breaker::new(1, Duration::from_secs(10)),
            METRICS,
        )
    }

    #[test]
    fn prefers_the_less_busy_endpoint() {
        let pool = pool(2);
        let held: Vec<InFlight<usize>> = (0..3).filter_map(|_| pool.pick(None)).collect();
        assert_eq!(held.len(), 3);
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

    #[test]
    fn skips_open_breakers_and_unhealthy_endpoints() {
        let pool = pool(3);
        pool.endpoints[0].record(false);
        pool.endpoints[1].set_healthy(false);
        for _ in 0..20 {
            let chosen = pool.pick(None).map(|slot| slot.endpoint().target);
            assert_eq!(chosen, Some(2));
        }
        pool.endpoints[2].record(false);
        assert!(pool.pick(None).is_none());
    }

    #[test]
    fn a_retry_avoids_the_endpoint_that_just_failed() {
        let pool = pool(2);
        for _ in 0..20 {
            let chosen = pool.pick(Some(&pool.endpoints[0]));
            assert_eq!(chosen.map(|slot| slot.endpoint().target), Some(1));
        }
    }

    #[test]
    fn weights_share_traffic_in_proportion() {
        let pool = Pool::new_weighted(
            "w",
            [(0usize, "light", 1), (1usize, "heavy", 3)],
            Arc::new(kit::SystemClock),
            || Breaker::new(1, Duration::from_secs(10)),
            METRICS,
        );
        // Hold every slot: in-flight counts follow the weights, 1 to 3.
        let held: Vec<InFlight<usize>> = (0..400).filter_map(|_| pool.pick(None)).collect();
        assert_eq!(held.len(), 400);
        let light = pool.endpoints[0].in_flight() as f64;
        let heavy = pool.endpoints[1].in_flight() as f64;
        let ratio = heavy / light;
        assert!((2.5..=3.5).contains(&ratio), "{heavy} / {light}");
    }

    #[test]
    fn a_lone_endpoint_is_picked_while_it_admits() {
        let pool = pool(1);
        let slot = pool.pick(Some(&pool.endpoints[0])).expect("the only one");
        assert_eq!(pool.endpoints[0].in_flight(), 1);
        drop(slot);
        pool.endpoints[0].set_healthy(false);
        assert!(pool.pick(None).is_none(), "ejected");
        pool.endpoints[0].set_healthy(true);
        pool.endpoints[0].record(false);
        assert!(pool.pick(None).is_none(), "breaker open");
        assert_eq!(pool.endpoints[0].in_flight(), 0);
    }

    #[test]
    fn a_lone_endpoint_probes_once_half_open_and_closes_on_success() {
        let clock = kit::ManualClock::new(chrono::Utc::now());
        let pool = Pool::new(
            "p",
            [(0usize, "e")],
            Arc::new(clock.clone()),
            || Breaker::new(1, Duration::from_secs(10)),
            METRICS,
        );
        pool.endpoints[0].record(false);
        assert!(pool.pick(None).is_none(), "open");
        clock.advance(chrono::Duration::seconds(10));
        let probe = pool.pick(None).expect("the half-open probe");
        assert!(pool.pick(None).is_none(), "one probe at a time");
        pool.endpoints[0].record(true);
        drop(probe);
        assert_eq!(pool.endpoints[0].breaker_state(), BreakerState::Closed);
        assert!(pool.pick(None).is_some());
        // Successes on a closed breaker keep it closed; a failure opens it.
        pool.endpoints[0].record(true);
        pool.endpoints[0].record(false);
        assert_eq!(pool.endpoints[0].breaker_state(), BreakerState::Open);
    }

    #[test]
    fn an_empty_pool_picks_nothing() {
        assert!(pool(0).pick(None).is_none());
    }
}
