//! [`GlobalLimiter`]: Redis when it is there, this replica's own limiter
//! when it is not.
//!
//! Losing the shared limiter must not take the gateway down with it, so by
//! default decisions fall back to the in-process limiter (fail open, each
//! replica enforcing the quota on its own: the limit is N times looser for
//! N replicas, never absent). Operators who prefer refusing traffic to
//! over-admitting it choose fail closed. Either way the switch is logged
//! once per transition and visible as `ratelimit_degraded` = 1.

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

fn count(backend: &'static str, decision: &Decision) {
    let outcome = if decision.allowed {
        "allowed"
    } else {
        "limited"
    };
    metrics::counter!("ratelimit_decisions_total", "backend" => backend, "outcome" => outcome)
        .increment(1);
}

#[async_trait::async_trait]
impl RateLimiter for GlobalLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterError> {
        match self.redis.check(key, quota).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    metrics::gauge!("ratelimit_degraded").set(0.0);
                    tracing::info!("rate limiting is global again (Redis)");
                }
                count("redis", &decision);
                Ok(decision)
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
                    WhenDown::FailOpen => {
                        let decision = self.local.decide(key, quota);
                        count("local", &decision);
                        Ok(decision)
                    }
                    WhenDown::FailClosed => Err(e),
                }
            }
        }
    }
}
