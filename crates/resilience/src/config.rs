//! Settings of the shared mechanisms, as operators write them: every
//! module that calls out (the gateway's pools, the LLM gateway's backends)
//! has a `breaker` and a `retry` table of this one shape.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-endpoint circuit breaker (also the passive ejection of an endpoint).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures (connect errors, 5xx, timeouts) that open it.
    pub failures_to_open: u32,
    /// How long it stays open before one probe is let through (half-open).
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_for: Duration::from_secs(10),
        }
    }
}

/// Retries of idempotent requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Retries may be at most this fraction of requests (e.g. 0.2).
    pub budget_ratio: f64,
    /// Retries always allowed regardless of the ratio (a floor for low
    /// traffic), as a reserve refilled by requests.
    pub budget_min_reserve: u32,
    /// Base of the jittered exponential backoff.
    #[schemars(with = "kit::config::reference::Duration")]
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            budget_ratio: 0.2,
            budget_min_reserve: 10,
            backoff: Duration::from_millis(10),
        }
    }
}
