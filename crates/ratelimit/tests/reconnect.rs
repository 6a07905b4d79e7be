//! Reconnection on demand: no task watches Redis. While the limiter is
//! down, decisions fail at once; the first decision after the backoff has
//! passed on the limiter's (manual) clock tries to reconnect, alone, and
//! each failed attempt doubles the backoff up to 5 s. Attempts are counted
//! as connections a listener received, so no test waits to see that
//! nothing happened.

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use kit::ManualClock;
use ratelimit::{LimiterError, Quota, RateLimiter, RedisLimiter, RedisSettings};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::RedisServer;

fn clock() -> ManualClock {
    ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("time"),
    )
}

fn quota() -> Quota {
    "100/s".parse().expect("quota")
}

fn is_unavailable(outcome: &Result<ratelimit::Decision, LimiterError>) -> bool {
    matches!(
        outcome,
        Err(LimiterError::Unavailable(_) | LimiterError::Timeout)
    )
}

/// Refused without an attempt, because another decision is reconnecting.
fn refused_at_once(outcome: &Result<ratelimit::Decision, LimiterError>) -> bool {
    matches!(outcome, Err(LimiterError::Unavailable(m)) if m == "reconnecting")
}

/// A server that accepts connections (the kernel completes them) and never
/// answers: every connect attempt hangs until the limiter's own timeout.
struct Silent {
    listener: TcpListener,
    accepted: usize,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        Self {
            listener,
            accepted: 0,
        }
    }

    fn settings(&self) -> RedisSettings {
        let addr = self.listener.local_addr().expect("address");
        let mut settings = RedisSettings::new(format!("redis://{addr}"));
        settings.reconnect_backoff = Duration::from_secs(1);
        // The connect attempt is bounded by max(this, 500 ms).
        settings.decision_timeout = Duration::from_millis(10);
        settings
    }

    /// Connection attempts since the last call.
    fn attempts(&mut self) -> usize {
        let before = self.accepted;
        while self.listener.accept().is_ok() {
            self.accepted += 1;
        }
        self.accepted - before
    }
}

#[tokio::test]
async fn a_down_limiter_reconnects_alone_once_the_backoff_has_passed() {
    let mut redis = Silent::start();
    let clock = clock();
    let limiter = RedisLimiter::connect(redis.settings(), Arc::new(clock.clone()))
        .await
        .expect("a limiter, down");
    assert!(!limiter.is_up());
    assert_eq!(redis.attempts(), 1, "one attempt at start");

    // Inside the backoff: refused at once, Redis not touched.
    for _ in 0..10 {
        assert!(is_unavailable(&limiter.check("k", &quota()).await));
    }
    clock.advance(ChronoDuration::milliseconds(999));
    assert!(is_unavailable(&limiter.check("k", &quota()).await));
    assert_eq!(redis.attempts(), 0);

    // The backoff has passed: the first decision reconnects, those that
    // arrive while it does are refused at once instead of piling up.
    clock.advance(ChronoDuration::milliseconds(1));
    let quota = quota();
    let (first, second, third) = tokio::join!(
        limiter.check("a", &quota),
        limiter.check("b", &quota),
        limiter.check("c", &quota),
    );
    assert!(
        is_unavailable(&first) && !refused_at_once(&first),
        "{first:?}"
    );
    assert!(refused_at_once(&second), "{second:?}");
    assert!(refused_at_once(&third), "{third:?}");
    assert_eq!(redis.attempts(), 1);

    // Each failed attempt doubles the backoff: 2 s, 4 s, then 5 s at most.
    for backoff_ms in [2_000, 4_000, 5_000, 5_000] {
        clock.advance(ChronoDuration::milliseconds(backoff_ms - 1));
        assert!(is_unavailable(&limiter.check("k", &quota).await));
        assert_eq!(redis.attempts(), 0, "before {backoff_ms} ms");
        clock.advance(ChronoDuration::milliseconds(1));
        assert!(is_unavailable(&limiter.check("k", &quota).await));
        assert_eq!(redis.attempts(), 1, "at {backoff_ms} ms");
    }
}

#[tokio::test]
async fn a_reconnecting_decision_that_is_cancelled_leaves_the_next_one_free_to_try() {
    let mut redis = Silent::start();
    let clock = clock();
    let limiter = RedisLimiter::connect(redis.settings(), Arc::new(clock.clone()))
        .await
        .expect("a limiter, down");
    redis.attempts();
    clock.advance(ChronoDuration::seconds(1));
    // The caller gives up on its decision while it is reconnecting.
    let quota = quota();
    let cancelled = tokio::time::timeout(Duration::from_millis(50), limiter.check("k", &quota));
    assert!(
        cancelled.await.is_err(),
        "the attempt hangs on a silent server"
    );
    assert_eq!(redis.attempts(), 1);
    // Not stuck "reconnecting": the next attempt comes after the doubled
    // backoff.
    clock.advance(ChronoDuration::milliseconds(1_999));
    assert!(is_unavailable(&limiter.check("k", &quota).await));
    assert_eq!(redis.attempts(), 0);
    clock.advance(ChronoDuration::milliseconds(1));
    assert!(is_unavailable(&limiter.check("k", &quota).await));
    assert_eq!(redis.attempts(), 1);
}

#[tokio::test]
async fn after_redis_returns_the_next_decision_past_the_backoff_is_global_again() {
    let server = RedisServer::start();
    let clock = clock();
    let mut settings = RedisSettings::new(server.url());
    settings.key_prefix = format!("reconnect{}:", std::process::id());
    settings.reconnect_backoff = Duration::from_secs(1);
    settings.decision_timeout = Duration::from_secs(2);
    let limiter = RedisLimiter::connect(settings, Arc::new(clock.clone()))
        .await
        .expect("connect");
    let quota: Quota = "100/s,burst=2".parse().expect("quota");
    assert!(limiter.check("k", &quota).await.expect("up").allowed);

    server.stop();
    assert!(is_unavailable(&limiter.check("k", &quota).await));
    assert!(!limiter.is_up());
    server.start_again().expect("restart");

    // Redis is back, but nothing reconnects until a decision comes after
    // the backoff: no background task is watching.
    assert!(is_unavailable(&limiter.check("k", &quota).await));
    assert!(!limiter.is_up());
    clock.advance(ChronoDuration::seconds(1));
    let decision = limiter.check("k", &quota).await.expect("decided by Redis");
    assert!(limiter.is_up());
    // The new Redis started empty: a fresh burst.
    assert_eq!((decision.allowed, decision.remaining), (true, 1));
}
