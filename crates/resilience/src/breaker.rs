//! A circuit breaker: closed, open, half-open.
//!
//! Closed counts consecutive failures; at `failures_to_open` it opens and
//! the endpoint takes no traffic (requests fail fast or go elsewhere in the
//! pool: one breaker per [`crate::pool::Endpoint`] is also the pool's
//! passive ejection). After `open_for` one
//! probe request is let through (half-open); its success closes the
//! breaker, its failure opens it again for another `open_for`. Time is
//! kit's injected [`kit::Clock`], so tests move it instead of sleeping.

use chrono::{DateTime, Utc};
use std::time::Duration;

type Instant = DateTime<Utc>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

/// One endpoint's breaker; the caller holds it behind a lock and says
/// what time it is (see [`crate::pool::Endpoint::record`]).
#[derive(Debug)]
pub struct Breaker {
    failures_to_open: u32,
    open_for: Duration,
    consecutive_failures: u32,
    /// Set while open: when the next probe may go.
    open_until: Option<Instant>,
    /// True while the half-open probe is in flight.
    probing: bool,
}

impl Breaker {
    pub fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            open_for,
            consecutive_failures: 0,
            open_until: None,
            probing: false,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Closed whatever the time: the state of nearly every call, which
    /// needs no clock read to admit a request or to record a success.
    pub fn is_closed(&self) -> bool {
        self.open_until.is_none()
    }

    /// Whether a request may go now; in half-open, only the first caller
    /// gets true (it is the probe) until its outcome is recorded.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.probing => false,
            BreakerState::HalfOpen => {
                self.probing = true;
                true
            }
        }
    }

    /// Whether a request could go now, without claiming the probe.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => !self.probing,
        }
    }

    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
        self.probing = false;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.probing || self.consecutive_failures >= self.failures_to_open {
            self.open_until = Some(
                now + chrono::Duration::from_std(self.open_for).unwrap_or(chrono::Duration::MAX),
            );
            self.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_then_probes_once() {
        let start = Utc::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        b.on_failure(start);
        b.on_failure(start);
        b.on_success();
        b.on_failure(start);
        b.on_failure(start);
        assert_eq!(b.state(start), BreakerState::Closed);
        b.on_failure(start);
        assert_eq!(b.state(start), BreakerState::Open);
        assert!(!b.try_acquire(start + Duration::from_secs(9)));
        let later = start + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.try_acquire(later), "the probe");
        assert!(!b.try_acquire(later), "only one probe at a time");
        b.on_failure(later);
        assert_eq!(b.state(later), BreakerState::Open);
        let again = later + Duration::from_secs(10);
        assert!(b.try_acquire(again));
        b.on_success();
        assert_eq!(b.state(again), BreakerState::Closed);
        assert!(b.try_acquire(again));
    }
}
