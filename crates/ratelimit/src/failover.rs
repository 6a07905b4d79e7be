//! [`GlobalLimiter`]: Redis when it is there, this replica's own limiter
//! when it is not.
//!
//! Losing the shared limiter must not take the gateway down with it, so by
//! default decisions fall back to the in-process limiter (fail open, each
//! replica enforcing the quota on its own: the limit is N times looser for
//! N replicas, never absent). Operators who prefer refusing traffic to
//! over-admitting it choose fail closed. Either way the switch is logged
//! once per transition and visible as `ratelimit_degraded` = 1.
//!
//! Every call follows the same rule: weighted decisions, refunds, budget
//! reservations and settlements alike. While failing open, budgets are
//! per replica too, and a refund or settlement of something reserved in
//! Redis before the outage lands on the local view, where it finds nothing
//! to give back: Redis keeps counting the full reservation (erring towards
//! limiting) until it expires.

use crate::budget::{BudgetDecision, BudgetWindow};
use crate::gcra::Decision;
use crate::local::LocalLimiter;
use crate::redis::RedisLimiter;
use crate::{LimiterError, Quota, RateLimiter};
use std::sync::atomic::{AtomicBool, Ordering};

/// What to do while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenDown {
    /// Decide with this replica's in-process limiter.
    #[default]
    FailOpen,
    /// Refuse: the caller answers 503.
    FailClosed,
}

pub struct GlobalLimiter {
    redis: RedisLimiter,
    local: LocalLimiter,
    when_down: WhenDown,
    degraded: AtomicBool,
}

impl GlobalLimiter {
    pub fn new(redis: RedisLimiter, local: LocalLimiter, when_down: WhenDown) -> Self {
        metrics::gauge!("ratelimit_degraded").set(0.0);
        Self {
            redis,
            local,
            when_down,
            degraded: AtomicBool::new(false),
        }
    }

    /// True while decisions are not made by Redis.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }
}

impl GlobalLimiter {
    /// Redis' answer; while Redis fails, this replica's (fail open) or the
    /// error (fail closed). Also says which backend answered.
    fn route<T>(
        &self,
        from_redis: Result<T, LimiterError>,
        locally: impl FnOnce(&LocalLimiter) -> Result<T, LimiterError>,
    ) -> Result<(T, &'static str), LimiterError> {
        match from_redis {
            Ok(answer) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    metrics::gauge!("ratelimit_degraded").set(0.0);
                    tracing::info!("rate limiting is global again (Redis)");
                }
                Ok((answer, "redis"))
            }
            Err(e) => {
                metrics::counter!("ratelimit_backend_errors_total").increment(1);
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    metrics::gauge!("ratelimit_degraded").set(1.0);
                    tracing::warn!(
                        error = %e,
                        fail = ?self.when_down,
                        "rate-limit Redis unavailable: deciding per replica until it returns"
                    );
                }
                match self.when_down {
                    WhenDown::FailOpen => locally(&self.local).map(|answer| (answer, "local")),
                    WhenDown::FailClosed => Err(e),
                }
            }
        }
    }
}

fn outcome(allowed: bool) -> &'static str {
    if allowed {
        "allowed"
    } else {
        "limited"
    }
}

#[async_trait::async_trait]
impl RateLimiter for GlobalLimiter {
    async fn check_n(&self, key: &str, quota: &Quota, cost: u64) -> Result<Decision, LimiterError> {
        let from_redis = self.redis.check_n(key, quota, cost).await;
        let (decision, backend) =
            self.route(from_redis, |local| Ok(local.decide_n(key, quota, cost)))?;
        metrics::counter!("ratelimit_decisions_total", "backend" => backend, "outcome" => outcome(decision.allowed))
            .increment(1);
        Ok(decision)
    }

    async fn refund(&self, key: &str, quota: &Quota, cost: u64) -> Result<(), LimiterError> {
        let from_redis = self.redis.refund(key, quota, cost).await;
        self.route(from_redis, |local| {
            local.give_back(key, quota, cost);
            Ok(())
        })?;
        Ok(())
    }

    async fn reserve(
        &self,
        key: &str,
        window: BudgetWindow,
        limit: u64,
        amount: u64,
    ) -> Result<BudgetDecision, LimiterError> {
        let from_redis = self.redis.reserve(key, window, limit, amount).await;
        let (decision, backend) = self.route(from_redis, |local| {
            local.reserve_now(key, window, limit, amount)
        })?;
        metrics::counter!("ratelimit_budget_decisions_total", "backend" => backend, "outcome" => outcome(decision.allowed))
            .increment(1);
        Ok(decision)
    }

    async fn settle(
        &self,
        key: &str,
        window: BudgetWindow,
        window_id: i64,
        delta: i64,
    ) -> Result<(), LimiterError> {
        let from_redis = self.redis.settle(key, window, window_id, delta).await;
        self.route(from_redis, |local| {
            local.settle_now(key, window, window_id, delta);
            Ok(())
        })?;
        Ok(())
    }
}
