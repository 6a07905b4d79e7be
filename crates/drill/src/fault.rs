//! The version under test, made bad on purpose: a layer in front of a
//! module's router that adds a service time to every request (both sides
//! get the same base, so the comparison is fair) and, on the canary side,
//! extra latency or a share of 500s. It records when the first bad
//! answer left and how many requests the bad version touched: the drill's
//! "time to decision" and "requests affected" come from here, not from the
//! controller under test.
//!
//! [`FaultSwitch`] is the other kind: a fault a drill turns on and off
//! while the module keeps serving (`reliable drill outage`), refused
//! unless it was built with `allow_faults`.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a side does to each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Service time every request takes.
    pub base: Duration,
    /// Extra service time, as a fraction of `base` (0.02 = 2 % slower).
    pub slower_by: f64,
    /// Extra service time on top.
    pub extra: Duration,
    /// Share of requests answered 500.
    pub error_ratio: f64,
}

impl Behaviour {
    pub fn healthy(base: Duration) -> Self {
        Self {
            base,
            slower_by: 0.0,
            extra: Duration::ZERO,
            error_ratio: 0.0,
        }
    }

    fn is_bad(&self) -> bool {
        self.slower_by > 0.0 || !self.extra.is_zero() || self.error_ratio > 0.0
    }
}

/// A side's behaviour and what it observed.
pub struct Fault {
    behaviour: Behaviour,
    rng: Mutex<SmallRng>,
    first_bad: OnceLock<Instant>,
    served: AtomicU64,
    affected: AtomicU64,
}

impl Fault {
    pub fn new(behaviour: Behaviour, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            first_bad: OnceLock::new(),
            served: AtomicU64::new(0),
            affected: AtomicU64::new(0),
        })
    }

    /// `router` behind this behaviour.
    pub fn wrap(self: &Arc<Self>, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), apply))
    }

    /// When the first bad answer left (none yet, or a healthy side).
    pub fn first_bad(&self) -> Option<Instant> {
        self.first_bad.get().copied()
    }

    /// Requests served.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Requests made worse (slowed or failed).
    pub fn affected(&self) -> u64 {
        self.affected.load(Ordering::Relaxed)
    }
}

async fn apply(State(fault): State<Arc<Fault>>, request: Request, next: Next) -> Response {
    let b = fault.behaviour;
    let fail = b.error_ratio > 0.0
        && fault
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_bool(b.error_ratio.min(1.0));
    let delay = b.base.mul_f64(1.0 + b.slower_by) + b.extra;
    tokio::time::sleep(delay).await;
    fault.served.fetch_add(1, Ordering::Relaxed);
    let response = if fail {
        (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response()
    } else {
        next.run(request).await
    };
    if b.is_bad() && (fail || b.error_ratio == 0.0) {
        fault.affected.fetch_add(1, Ordering::Relaxed);
        let _ = fault.first_bad.set(Instant::now());
    }
    response
}

/// What an armed [`FaultSwitch`] does to each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Injected {
    /// Share of requests answered 500, spread evenly per route (every
    /// 1/ratio-th request of each), so a 2 % fault is 2 % of every route's
    /// answers in every window, not 2 % on average.
    pub error_ratio: f64,
    /// Added to every request before the module answers.
    pub latency: Duration,
}

/// Why a switch refused to arm.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SwitchError {
    #[error("fault injection is not enabled here: only a drill or a test may arm a fault switch")]
    NotAllowed,
    #[error("error ratio {0} is outside (0, 1]")]
    Ratio(f64),
}

/// A fault a drill turns on and off while a module keeps serving: off by
/// default, and armed only when it was built with `allow_faults` (which
/// only drills and tests pass; `reliable up`/`serve` never build one), so
/// no configuration can make production answer errors on purpose.
#[derive(Debug)]
pub struct FaultSwitch {
    allow_faults: bool,
    armed: Mutex<Option<Injected>>,
    /// Requests seen per route while armed: the even spreading counts on
    /// it (keys are the router's route templates, a bounded set).
    seen: Mutex<std::collections::HashMap<String, u64>>,
    injected: AtomicU64,
}

impl FaultSwitch {
    /// A disarmed switch; `allow_faults: false` makes one that can never arm.
    pub fn new(allow_faults: bool) -> Arc<Self> {
        Arc::new(Self {
            allow_faults,
            armed: Mutex::new(None),
            seen: Mutex::new(std::collections::HashMap::new()),
            injected: AtomicU64::new(0),
        })
    }

    /// Turns the fault on (replacing one already on).
    pub fn arm(&self, fault: Injected) -> Result<(), SwitchError> {
        if !self.allow_faults {
            return Err(SwitchError::NotAllowed);
        }
        let ratio = fault.error_ratio;
        if !(ratio.is_finite() && (0.0..=1.0).contains(&ratio)) {
            return Err(SwitchError::Ratio(ratio));
        }
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(fault);
        Ok(())
    }

    /// Turns the fault off.
    pub fn disarm(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn is_armed(&self) -> bool {
        self.armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Requests answered 500 by the switch so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// `router` behind this switch. Wrap the module's routes before the
    /// platform stack (`kit::http::stack`), so the request metrics, and
    /// the SLIs read from them, see the injected answers as the module's.
    pub fn wrap(self: &Arc<Self>, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), switched))
    }

    /// Whether the `n`-th request (from 0) of an armed period fails: the
    /// failures are spread so that any run of requests holds its share.
    fn fails(ratio: f64, n: u64) -> bool {
        ((n + 1) as f64 * ratio).floor() > (n as f64 * ratio).floor()
    }
}

async fn switched(
    State(switch): State<Arc<FaultSwitch>>,
    request: Request,
    next: Next,
) -> Response {
    let armed = *switch.armed.lock().unwrap_or_else(|e| e.into_inner());
    let Some(fault) = armed else {
        return next.run(request).await;
    };
    if !fault.latency.is_zero() {
        tokio::time::sleep(fault.latency).await;
    }
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let n = {
        let mut seen = switch.seen.lock().unwrap_or_else(|e| e.into_inner());
        let count = seen.entry(route.to_string()).or_insert(0);
        *count += 1;
        *count - 1
    };
    if fault.error_ratio > 0.0 && FaultSwitch::fails(fault.error_ratio, n) {
        switch.injected.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn app(switch: &Arc<FaultSwitch>) -> Router {
        switch.wrap(Router::new().route("/", axum::routing::get(|| async { "ok" })))
    }

    async fn statuses(app: &Router, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            let request = http::Request::get("/")
                .body(axum::body::Body::empty())
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("infallible");
            out.push(response.status().as_u16());
        }
        out
    }

    #[test]
    fn a_switch_without_allow_faults_never_arms() {
        let switch = FaultSwitch::new(false);
        let fault = Injected {
            error_ratio: 1.0,
            latency: Duration::ZERO,
        };
        assert_eq!(switch.arm(fault), Err(SwitchError::NotAllowed));
        assert!(!switch.is_armed());
    }

    #[test]
    fn ratios_outside_zero_to_one_are_refused() {
        let switch = FaultSwitch::new(true);
        for ratio in [-0.1, 1.5, f64::NAN] {
            let fault = Injected {
                error_ratio: ratio,
                latency: Duration::ZERO,
            };
            assert!(matches!(switch.arm(fault), Err(SwitchError::Ratio(_))));
        }
    }

    #[tokio::test]
    async fn off_by_default_then_an_even_share_then_off_again() {
        let switch = FaultSwitch::new(true);
        let app = app(&switch);
        assert!(statuses(&app, 10).await.iter().all(|s| *s == 200));
        switch
            .arm(Injected {
                error_ratio: 0.1,
                latency: Duration::ZERO,
            })
            .expect("allowed");
        let armed = statuses(&app, 100).await;
        // Every run of 10 holds exactly one failure.
        for chunk in armed.chunks(10) {
            assert_eq!(chunk.iter().filter(|s| **s == 500).count(), 1);
        }
        assert_eq!(switch.injected(), 10);
        switch.disarm();
        assert!(statuses(&app, 10).await.iter().all(|s| *s == 200));
    }
}
