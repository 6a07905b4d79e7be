//! Token limits while Redis is away. Failing open, weighted decisions,
//! refunds, reservations and settlements all go to this replica's own
//! limiter, which still limits; failing closed, every one of them errs.
//! Once Redis returns, calls are global again.

mod common;

use chrono::Duration as ChronoDuration;
use common::{clock, redis_limiter, settings};
use kit::ManualClock;
use ratelimit::{
    BudgetWindow, GlobalLimiter, LimiterError, LocalLimiter, Quota, RateLimiter, WhenDown,
};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::RedisServer;

async fn global(server: &RedisServer, clock: &ManualClock, when_down: WhenDown) -> GlobalLimiter {
    let redis = redis_limiter(settings(server), clock).await;
    GlobalLimiter::new(redis, LocalLimiter::new(Arc::new(clock.clone())), when_down)
}

/// Makes one decision and moves the clock on 100 ms until Redis decides
/// again: reconnecting is driven by decisions once the backoff has passed.
async fn until_global_again(limiter: &GlobalLimiter, clock: &ManualClock) {
    let quota: Quota = "100/s".parse().expect("quota");
    testkit::eventually(
        "Redis to decide again",
        Duration::from_secs(30),
        async || {
            if !limiter.is_degraded() {
                return Some(());
            }
            limiter
                .check("poll", &quota)
                .await
                .expect("fail open never errs");
            clock.advance(ChronoDuration::milliseconds(100));
            None
        },
    )
    .await;
}

#[tokio::test]
async fn failing_open_decides_tokens_and_budgets_locally_until_redis_returns() {
    let server = RedisServer::start();
    let clock = clock();
    let limiter = global(&server, &clock, WhenDown::FailOpen).await;
    let day = BudgetWindow::Day;
    let quota: Quota = "1000/min".parse().expect("quota");
    let in_redis = limiter.reserve("k", day, 100, 60).await.expect("reserve");
    assert!(in_redis.allowed);
    assert!(!limiter.is_degraded());

    server.stop();
    // This replica's view starts empty, and then limits on its own.
    let local = limiter
        .reserve("k", day, 100, 100)
        .await
        .expect("fail open");
    assert_eq!((local.allowed, local.used), (true, 100));
    assert!(limiter.is_degraded());
    assert!(
        !limiter
            .reserve("k", day, 100, 1)
            .await
            .expect("open")
            .allowed
    );
    limiter
        .settle("k", day, local.window_id, -50)
        .await
        .expect("fail open");
    let d = limiter.reserve("k", day, 100, 50).await.expect("fail open");
    assert_eq!((d.allowed, d.used), (true, 100));

    assert!(
        limiter
            .check_n("t", &quota, 600)
            .await
            .expect("open")
            .allowed
    );
    let refused = limiter.check_n("t", &quota, 500).await.expect("fail open");
    assert_eq!(
        (refused.allowed, refused.retry_after_us),
        (false, 6_000_000)
    );
    limiter.refund("t", &quota, 100).await.expect("fail open");
    assert!(
        limiter
            .check_n("t", &quota, 500)
            .await
            .expect("open")
            .allowed
    );
    let too_big = limiter.check_n("t", &quota, 1001).await.expect("fail open");
    assert!(too_big.exceeds_burst());

    server.start_again().expect("restart");
    until_global_again(&limiter, &clock).await;
    // Global again, in a Redis that restarted empty.
    let d = limiter.reserve("k", day, 100, 100).await.expect("reserve");
    assert_eq!((d.allowed, d.used), (true, 100));
    assert!(!limiter.is_degraded());
}

fn is_unavailable<T: std::fmt::Debug>(outcome: Result<T, LimiterError>) -> bool {
    match outcome {
        Err(LimiterError::Unavailable(_) | LimiterError::Timeout) => true,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn failing_closed_every_token_and_budget_call_errs() {
    let server = RedisServer::start();
    let clock = clock();
    let limiter = global(&server, &clock, WhenDown::FailClosed).await;
    let day = BudgetWindow::Day;
    let quota: Quota = "1000/min".parse().expect("quota");
    let reserved = limiter.reserve("k", day, 100, 10).await.expect("up");
    server.stop();
    for _ in 0..3 {
        assert!(is_unavailable(limiter.check_n("k", &quota, 10).await));
        assert!(is_unavailable(limiter.refund("k", &quota, 10).await));
        assert!(is_unavailable(limiter.reserve("k", day, 100, 10).await));
        assert!(is_unavailable(
            limiter.settle("k", day, reserved.window_id, -10).await
        ));
    }
    assert!(limiter.is_degraded());
}
