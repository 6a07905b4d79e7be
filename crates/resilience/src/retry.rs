//! Retry budget and backoff (the Finagle / Envoy "retry budget" idea).
//!
//! Every request deposits `ratio` of a retry into a shared balance and
//! every retry withdraws a whole one, so retries stay at most `ratio` of
//! requests however many fail: during an outage retries cannot multiply
//! the load on a struggling upstream. A small reserve lets a quiet route
//! retry at all. Backoff is exponential with full jitter, so clients that
//! failed together do not retry together.

use rand::Rng;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Balance in thousandths of a retry.
const UNIT: i64 = 1000;

#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    cap: i64,
    balance: AtomicI64,
}

impl RetryBudget {
    pub fn new(ratio: f64, min_reserve: u32) -> Self {
        let deposit = (ratio.clamp(0.0, 1.0) * UNIT as f64).round() as i64;
        let reserve = i64::from(min_reserve) * UNIT;
        Self {
            deposit,
            // Enough to absorb a burst of failures, not a day of savings.
            cap: reserve.max(UNIT * 100),
            balance: AtomicI64::new(reserve),
        }
    }

    /// Called once per request (not per attempt).
    pub fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + self.deposit).min(self.cap))
            });
    }

    /// Takes one retry from the budget; false if it is spent.
    pub fn try_withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= UNIT).then_some(b - UNIT)
            })
            .is_ok()
    }
}

/// Wait before retry number `attempt` (1-based): uniform in
/// `[0, base * 2^(attempt-1)]`, at most one second.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(1));
    let micros = ceiling.as_micros() as u64;
    Duration::from_micros(rand::rng().random_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_ratio_after_the_reserve() {
        let budget = RetryBudget::new(0.2, 3);
        let mut retries = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.try_withdraw() {
                retries += 1;
            }
        }
        // 3 from the reserve plus 20% of 1000.
        assert_eq!(retries, 203);
    }

    #[test]
    fn an_empty_budget_refuses() {
        let budget = RetryBudget::new(0.0, 0);
        budget.deposit();
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let base = Duration::from_millis(10);
        for attempt in 1..5 {
            assert!(backoff(base, attempt) <= base * (1 << (attempt - 1)));
        }
        assert!(backoff(base, 30) <= Duration::from_secs(1));
    }
}
