//! What the token and budget test binaries share: a manual clock set to a
//! given UTC instant, and Redis settings with a key prefix of their own.

use chrono::{DateTime, TimeZone, Utc};
use kit::ManualClock;
use ratelimit::{RedisLimiter, RedisSettings};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::RedisServer;

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("a valid UTC time")
}

pub fn clock() -> ManualClock {
    ManualClock::new(utc(2026, 1, 1, 0, 0, 0))
}

static NEXT_PREFIX: AtomicU64 = AtomicU64::new(0);

/// Settings for one test's key space; limiters built from clones of them
/// are replicas sharing it.
pub fn settings(server: &RedisServer) -> RedisSettings {
    let mut settings = RedisSettings::new(server.url());
    settings.key_prefix = format!(
        "tokens{}:{}:",
        std::process::id(),
        NEXT_PREFIX.fetch_add(1, Ordering::Relaxed)
    );
    settings.reconnect_backoff = Duration::from_millis(20);
    // Generous: a loaded machine must not turn a slow answer into an outage.
    settings.decision_timeout = Duration::from_secs(2);
    settings
}

/// A limiter connected to `settings`' server. The tests' clock does not
/// move by itself, so a limiter that started down would never reach its
/// reconnect backoff: that is said here, not by the first decision.
pub async fn redis_limiter(settings: RedisSettings, clock: &ManualClock) -> RedisLimiter {
    let url = settings.url.clone();
    let limiter = RedisLimiter::connect(settings, Arc::new(clock.clone()))
        .await
        .expect("connect");
    assert!(
        limiter.is_up(),
        "the limiter could not reach {url} at start (see the warning logged above)"
    );
    limiter
}
