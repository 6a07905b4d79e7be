//! The version under test, made bad on purpose: a layer in front of a
//! module's router that adds a service time to every request (both sides
//! get the same base, so the comparison is fair) and, on the canary side,
//! extra latency or a share of 500s. It records when the first bad
//! answer left and how many requests the bad version touched: the drill's
//! "time to decision" and "requests affected" come from here, not from the
//! controller under test.

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
