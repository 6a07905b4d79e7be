//! Rate limiting for the gateway: GCRA (generic cell rate algorithm) behind
//! one port with two adapters.
//!
//! - [`quota`]: `RATE/UNIT[,burst=N]`, parsed once into the two numbers
//!   GCRA needs;
//! - [`gcra`]: the algorithm as pure integer arithmetic, shared by both
//!   adapters so they cannot disagree;
//! - [`local`]: the in-process adapter (one replica's view);
//! - [`redis`]: the Redis adapter, one atomic script round trip per
//!   decision, so a limit holds across every replica;
//! - [`failover`]: Redis with the in-process limiter behind it while Redis
//!   is away (fail open), or refusal (fail closed);
//! - [`headers`]: `RateLimit`, `RateLimit-Policy` and `Retry-After`.
//!
//! GCRA rather than fixed windows: a client cannot double its rate at a
//! window boundary, and a key's whole state is one timestamp.
#![forbid(unsafe_code)]

pub mod failover;
pub mod gcra;
pub mod headers;
pub mod local;
pub mod quota;
pub mod redis;

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

/// The port: decide one request of `key` under `quota`.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterError>;
}
