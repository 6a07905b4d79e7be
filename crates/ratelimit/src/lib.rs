//! Rate limiting for the gateway: GCRA (generic cell rate algorithm) behind
//! one port with two adapters.
//!
//! - [`quota`]: `RATE/UNIT[,burst=N]`, parsed once into the two numbers
//!   GCRA needs;
//! - [`gcra`]: the algorithm as pure integer arithmetic, shared by both
//!   adapters so they cannot disagree, with weighted costs (tokens per
//!   minute) and refunds;
//! - [`budget`]: calendar budgets (per UTC day or month), reserved then
//!   settled, for allowances that reset at midnight rather than flow;
//! - [`local`]: the in-process adapter (one replica's view);
//! - [`redis`]: the Redis adapter, one atomic script round trip per
//!   decision, so a limit holds across every replica;
//! - [`failover`]: Redis with the in-process limiter behind it while Redis
//!   is away (fail open), or refusal (fail closed);
//! - [`headers`]: `RateLimit`, `RateLimit-Policy` and `Retry-After`.
//!
//! GCRA rather than fixed windows for quotas: a client cannot double its
//! rate at a window boundary, and a key's whole state is one timestamp.
//! Budgets are fixed calendar windows on purpose (see [`budget`]).
#![forbid(unsafe_code)]

pub mod budget;
pub mod failover;
pub mod gcra;
pub mod headers;
pub mod local;
pub mod quota;
pub mod redis;

pub use budget::{BudgetDecision, BudgetWindow, BudgetWindowError};
pub use failover::{GlobalLimiter, WhenDown};
pub use gcra::Decision;
pub use local::LocalLimiter;
pub use quota::{Quota, QuotaError};
pub use redis::{RedisLimiter, RedisSettings};

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    #[error("rate-limit backend unavailable: {0}")]
    Unavailable(String),
    #[error("rate-limit backend did not answer in time")]
    Timeout,
    #[error("rate-limit backend misconfigured: {0}")]
    Config(String),
}

/// The port: GCRA decisions for `key` under a [`Quota`], and calendar
/// budgets. Every adapter does the same arithmetic ([`gcra`], [`budget`]),
/// with time from its injected clock.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Decides one request of `key` under `quota`: `check_n(key, quota, 1)`.
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterError> {
        self.check_n(key, quota, 1).await
    }

    /// Decides one request that spends `cost` cells at once (a quota of
    /// `1000/min` and a cost of 300 tokens): allowed only if all of them
    /// fit, and then all are spent. A cost of 0 is allowed and spends
    /// nothing. A cost above the quota's burst is never allowed: the
    /// refusal says so with [`Decision::exceeds_burst`]
    /// (`retry_after_us == u64::MAX`).
    async fn check_n(&self, key: &str, quota: &Quota, cost: u64) -> Result<Decision, LimiterError>;

    /// Gives back `cost` cells spent earlier under `quota` (a reservation
    /// larger than what was used). The key's TAT moves back by `cost`
    /// emission intervals, but never below now: a key never holds more
    /// than its full burst.
    async fn refund(&self, key: &str, quota: &Quota, cost: u64) -> Result<(), LimiterError>;

    /// Adds `amount` to `key`'s counter for the current `window` if the
    /// counter stays at or below `limit`, and otherwise refuses without
    /// adding anything; atomic across replicas. An amount of 0 is allowed
    /// and adds nothing. Limits above [`budget::MAX_BUDGET`] act as it.
    async fn reserve(
        &self,
        key: &str,
        window: BudgetWindow,
        limit: u64,
        amount: u64,
    ) -> Result<BudgetDecision, LimiterError>;

    /// Adds `delta` to `key`'s counter of the window `window_id` names (the
    /// [`BudgetDecision::window_id`] of the reservation): negative releases
    /// what was reserved and not used, positive charges more than was
    /// reserved (the counter may pass its limit: it was spent). The counter
    /// never goes below 0. The window may have ended: its counter is still
    /// adjusted for [`budget::SETTLE_GRACE`] after its end, and after that
    /// settling changes nothing.
    async fn settle(
        &self,
        key: &str,
        window: BudgetWindow,
        window_id: i64,
        delta: i64,
    ) -> Result<(), LimiterError>;
}
