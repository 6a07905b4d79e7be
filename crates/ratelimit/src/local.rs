//! The in-process adapter: one replica's view. Right for `reliable up` and
//! a single gateway; with N replicas each one allows the full quota (and
//! the full budget), so a client gets N times its limit (the Redis adapter
//! exists for that).

use crate::budget::{self, BudgetDecision, BudgetWindow};
use crate::gcra::{self, step_n, Decision};
use crate::{LimiterError, Quota, RateLimiter};
use kit::Clock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 16;
/// A shard sweeps keys whose TAT has passed once it holds this many; the
/// budget counters sweep ended windows the same way.
const SWEEP_AT: usize = 4096;

pub struct LocalLimiter {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    /// Budget counters: far fewer calls than quota decisions (one per LLM
    /// request), so one lock is enough.
    budgets: Mutex<Counters>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Shard {
    tats: HashMap<String, i64>,
    sweep_at: usize,
}

#[derive(Default)]
struct Counters {
    /// (window, window start, key) -> (used, forget at, unix seconds).
    used: HashMap<(BudgetWindow, i64, String), (u64, i64)>,
    sweep_at: usize,
}

impl LocalLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            budgets: Mutex::default(),
            clock,
        }
    }

    /// Decides synchronously; never fails.
    pub fn decide(&self, key: &str, quota: &Quota) -> Decision {
        self.decide_n(key, quota, 1)
    }

    /// Decides a request of `cost` cells synchronously; never fails.
    pub fn decide_n(&self, key: &str, quota: &Quota, cost: u64) -> Decision {
        let now = now_us(self.clock.as_ref());
        let mut shard = self.shard(key);
        let s = step_n(shard.tats.get(key).copied(), now, quota, cost);
        if s.allowed && cost > 0 {
            shard.tats.insert(key.to_string(), s.tat_us);
            // A key past its TAT is the same as a missing one: forget it,
            // so memory follows the active clients, not every client ever.
            if shard.tats.len() >= shard.sweep_at.max(SWEEP_AT) {
                shard.tats.retain(|_, tat| *tat > now);
                shard.sweep_at = shard.tats.len() * 2;
            }
        }
        Decision::of_n(s, now, quota, cost)
    }

    /// Gives back `cost` cells of `key` synchronously; never fails.
    pub(crate) fn give_back(&self, key: &str, quota: &Quota, cost: u64) {
        let now = now_us(self.clock.as_ref());
        let mut shard = self.shard(key);
        let Some(tat) = shard.tats.get_mut(key) else {
            return;
        };
        match gcra::refund(Some(*tat), now, quota, cost) {
            Some(new_tat) => *tat = new_tat,
            None => {
                shard.tats.remove(key);
            }
        }
    }

    /// Reserves on `key`'s budget synchronously.
    pub(crate) fn reserve_now(
        &self,
        key: &str,
        window: BudgetWindow,
        limit: u64,
        amount: u64,
    ) -> Result<BudgetDecision, LimiterError> {
        let now = now_us(self.clock.as_ref());
        let span = budget::current_span(window, now)?;
        let mut counters = self.counters();
        let id = (window, span.start, key.to_string());
        let used = counters.used.get(&id).map_or(0, |c| c.0);
        let (allowed, used) = budget::reserve(used, limit, amount);
        if allowed && amount > 0 {
            counters.used.insert(id, (used, span.expires_s()));
            counters.sweep(budget::seconds(now));
        }
        Ok(BudgetDecision::of(allowed, used, limit, span, now))
    }

    /// Settles on `key`'s budget synchronously; never fails.
    pub(crate) fn settle_now(&self, key: &str, window: BudgetWindow, window_id: i64, delta: i64) {
        let now_s = budget::seconds(now_us(self.clock.as_ref()));
        let Some(span) = window.span_at(window_id).filter(|s| s.settles_at(now_s)) else {
            return;
        };
        let mut counters = self.counters();
        let id = (window, span.start, key.to_string());
        let used = counters.used.get(&id).map_or(0, |c| c.0);
        match budget::settle(used, delta) {
            0 => {
                counters.used.remove(&id);
            }
            used => {
                counters.used.insert(id, (used, span.expires_s()));
                counters.sweep(now_s);
            }
        }
    }

    /// Keys currently held (for tests and the memory metric).
    pub fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).tats.len())
            .sum()
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Counters {
    /// Forgets the counters of windows past their settlement grace.
    fn sweep(&mut self, now_s: i64) {
        if self.used.len() >= self.sweep_at.max(SWEEP_AT) {
            self.used.retain(|_, (_, forget_at)| *forget_at > now_s);
            self.sweep_at = self.used.len() * 2;
        }
    }
}

pub(crate) fn now_us(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_micros()
}

#[async_trait::async_trait]
impl RateLimiter for LocalLimiter {
    async fn check_n(&self, key: &str, quota: &Quota, cost: u64) -> Result<Decision, LimiterError> {
        Ok(self.decide_n(key, quota, cost))
    }

    async fn refund(&self, key: &str, quota: &Quota, cost: u64) -> Result<(), LimiterError> {
        self.give_back(key, quota, cost);
        Ok(())
    }

    async fn reserve(
        &self,
        key: &str,
        window: BudgetWindow,
        limit: u64,
        amount: u64,
    ) -> Result<BudgetDecision, LimiterError> {
        self.reserve_now(key, window, limit, amount)
    }

    async fn settle(
        &self,
        key: &str,
        window: BudgetWindow,
        window_id: i64,
        delta: i64,
    ) -> Result<(), LimiterError> {
        self.settle_now(key, window, window_id, delta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration as ChronoDuration, TimeZone, Utc};
    use kit::ManualClock;

    /// A limiter holding `SWEEP_AT - 1` day counters of 2026-01-01, its
    /// clock then moved to `minutes` after the next midnight.
    fn full_day_then(minutes: i64) -> LocalLimiter {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single();
        let clock = ManualClock::new(start.expect("time"));
        let limiter = LocalLimiter::new(Arc::new(clock.clone()));
        for i in 1..SWEEP_AT {
            let d = limiter.reserve_now(&format!("k{i}"), BudgetWindow::Day, 10, 1);
            assert!(d.expect("reserve").allowed);
        }
        clock.advance(ChronoDuration::hours(12) + ChronoDuration::minutes(minutes));
        limiter
    }

    #[test]
    fn ended_windows_are_forgotten_once_their_grace_has_passed() {
        // The insert that reaches SWEEP_AT sweeps.
        let within_grace = full_day_then(59);
        within_grace
            .reserve_now("new", BudgetWindow::Day, 10, 1)
            .expect("reserve");
        assert_eq!(within_grace.counters().used.len(), SWEEP_AT);
        let after_grace = full_day_then(60);
        after_grace
            .reserve_now("new", BudgetWindow::Day, 10, 1)
            .expect("reserve");
        assert_eq!(after_grace.counters().used.len(), 1);
    }
}
