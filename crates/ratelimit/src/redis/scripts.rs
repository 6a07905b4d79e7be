//! The Redis adapter's four calls, each one atomic script that mirrors the
//! shared arithmetic line for line: [`crate::gcra::step_n`],
//! [`crate::gcra::refund`], [`crate::budget`]'s reserve and settle.
//!
//! Lua numbers are doubles, exact below 2^53: the Rust side clamps what it
//! sends (a cost to burst + 1, budget amounts to [`crate::budget`]'s
//! ceilings) so every comparison in a script is exact. Budget counters are
//! only ever written from the caller's integer strings (`INCRBY`, `SET`),
//! never from a Lua number, whose text form may be `1e+15`.
//! Expiries are relative (`PX`, `EXPIRE`), computed on the caller's clock
//! like every other time here.

use super::RedisLimiter;
use crate::budget::{self, BudgetDecision, BudgetWindow};
use crate::gcra::{Decision, Step};
use crate::{LimiterError, Quota, RateLimiter};

/// ARGV: now, interval, tolerance, cost (all microseconds but the cost).
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if cost == 0 then return {1, tat} end
local increment = interval * cost
if tat - now <= tolerance + interval - increment then
  local new_tat = tat + increment
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
  return {1, new_tat}
end
return {0, tat}
";

/// ARGV: now, the time to give back (cost x interval), microseconds.
const REFUND: &str = r"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local now = tonumber(ARGV[1])
local tat = tonumber(stored) - tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000))
return tat
";

/// ARGV: limit, amount, seconds until the counter may be forgotten.
const RESERVE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[2])
if amount == 0 then return {1, used} end
if used + amount > tonumber(ARGV[1]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
";

/// ARGV: delta, the counter's ceiling, seconds until the counter may be
/// forgotten (0 or less: it already is, and settling changes nothing).
const SETTLE: &str = r"
if tonumber(ARGV[3]) <= 0 then return 0 end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local settled = used + tonumber(ARGV[1])
if settled <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
if settled >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return tonumber(ARGV[2])
end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return settled
";

pub(super) struct Scripts {
    gcra: redis::Script,
    refund: redis::Script,
    reserve: redis::Script,
    settle: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            gcra: redis::Script::new(GCRA),
            refund: redis::Script::new(REFUND),
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
        }
    }

    pub(super) fn all(&self) -> [&redis::Script; 4] {
        [&self.gcra, &self.refund, &self.reserve, &self.settle]
    }
}

impl RedisLimiter {
    fn budget_key(&self, key: &str, window: BudgetWindow, start: i64) -> String {
        self.key(&format!("budget:{window}:{start}:"), key)
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn check_n(&self, key: &str, quota: &Quota, cost: u64) -> Result<Decision, LimiterError> {
        let redis_key = self.key("", key);
        let ((allowed, tat_us), now) = self
            .run::<(i64, i64)>(|now| {
                let mut invocation = self.shared.scripts.gcra.key(redis_key);
                invocation
                    .arg(now)
                    .arg(quota.emission_interval_us())
                    .arg(quota.tolerance_us())
                    .arg(cost.min(quota.burst() + 1));
                Ok(invocation)
            })
            .await?;
        let step = Step {
            allowed: allowed == 1,
            tat_us,
        };
        Ok(Decision::of_n(step, now, quota, cost))
    }

    async fn refund(&self, key: &str, quota: &Quota, cost: u64) -> Result<(), LimiterError> {
        let redis_key = self.key("", key);
        let back = cost.saturating_mul(quota.emission_interval_us());
        self.run::<i64>(|now| {
            let mut invocation = self.shared.scripts.refund.key(redis_key);
            invocation.arg(now).arg(back);
            Ok(invocation)
        })
        .await?;
        Ok(())
    }

    async fn reserve(
        &self,
        key: &str,
        window: BudgetWindow,
        limit: u64,
        amount: u64,
    ) -> Result<BudgetDecision, LimiterError> {
        let ((allowed, used), now) = self
            .run::<(i64, i64)>(|now| {
                let span = budget::current_span(window, now)?;
                let mut invocation = self
                    .shared
                    .scripts
                    .reserve
                    .key(self.budget_key(key, window, span.start));
                invocation
                    .arg(budget::clamp_limit(limit))
                    .arg(budget::clamp_amount(amount))
                    .arg(span.expires_s() - budget::seconds(now));
                Ok(invocation)
            })
            .await?;
        let span = budget::current_span(window, now)?;
        let used = u64::try_from(used).unwrap_or(0);
        Ok(BudgetDecision::of(allowed == 1, used, limit, span, now))
    }

    async fn settle(
        &self,
        key: &str,
        window: BudgetWindow,
        window_id: i64,
        delta: i64,
    ) -> Result<(), LimiterError> {
        // A window outside the calendar has no counter to settle.
        let Some(span) = window.span_at(window_id) else {
            return Ok(());
        };
        let redis_key = self.budget_key(key, window, span.start);
        self.run::<i64>(|now| {
            let mut invocation = self.shared.scripts.settle.key(redis_key);
            invocation
                .arg(budget::clamp_delta(delta))
                .arg(budget::MAX_USED)
                .arg(span.expires_s() - budget::seconds(now));
            Ok(invocation)
        })
        .await?;
        Ok(())
    }
}
