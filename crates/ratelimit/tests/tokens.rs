//! Token limits, as the LLM gateway uses them: weighted GCRA decisions,
//! refunds, and calendar budgets reserved then settled. One suite, run
//! against every adapter (in-process, Redis, Redis behind the failover),
//! then two replicas on one Redis sharing both. Time is a manual clock;
//! no test waits for a window to pass.

mod common;

use chrono::Duration as ChronoDuration;
use common::{clock, redis_limiter, settings, utc};
use kit::ManualClock;
use ratelimit::{
    BudgetWindow, GlobalLimiter, LocalLimiter, Quota, RateLimiter, RedisLimiter, WhenDown,
};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::RedisServer;

fn us(micros: i64) -> ChronoDuration {
    ChronoDuration::microseconds(micros)
}

// ---- the conformance suite, run once per adapter ----------------------

async fn weighted_requests_spend_their_cost_and_wait_exactly(
    limiter: &dyn RateLimiter,
    clock: &ManualClock,
) {
    // 1000 tokens a minute: one every 60 ms, a burst of 1000.
    let quota: Quota = "1000/min".parse().expect("quota");
    let first = limiter.check_n("w", &quota, 600).await.expect("decision");
    assert!(first.allowed);
    assert_eq!((first.remaining, first.reset_us), (400, 36_000_000));
    let refused = limiter.check_n("w", &quota, 500).await.expect("decision");
    assert!(!refused.allowed && !refused.exceeds_burst());
    // 100 tokens short: 100 x 60 ms.
    assert_eq!(
        (refused.remaining, refused.retry_after_us),
        (400, 6_000_000)
    );
    let rest = limiter.check_n("w", &quota, 400).await.expect("decision");
    assert_eq!((rest.allowed, rest.remaining), (true, 0));
    // `check` is a cost of 1: one token, 60 ms away.
    let one = limiter.check("w", &quota).await.expect("decision");
    assert_eq!((one.allowed, one.retry_after_us), (false, 60_000));
    let again = limiter.check_n("w", &quota, 500).await.expect("decision");
    assert_eq!(again.retry_after_us, 30_000_000);
    clock.advance(us(29_999_999));
    assert!(!limiter.check_n("w", &quota, 500).await.expect("d").allowed);
    clock.advance(us(1));
    let allowed = limiter.check_n("w", &quota, 500).await.expect("decision");
    assert_eq!((allowed.allowed, allowed.remaining), (true, 0));
}

async fn a_cost_above_the_burst_is_refused_and_cost_zero_is_free(limiter: &dyn RateLimiter) {
    let quota: Quota = "1000/min,burst=100".parse().expect("quota");
    let refused = limiter.check_n("big", &quota, 101).await.expect("decision");
    assert!(refused.exceeds_burst());
    assert_eq!((refused.remaining, refused.retry_after_us), (100, u64::MAX));
    // Nothing was spent by the refusal, nor by a cost of 0.
    let zero = limiter.check_n("big", &quota, 0).await.expect("decision");
    assert_eq!(
        (zero.allowed, zero.remaining, zero.reset_us),
        (true, 100, 0)
    );
    assert!(
        limiter
            .check_n("big", &quota, 100)
            .await
            .expect("d")
            .allowed
    );
    let spent = limiter.check_n("big", &quota, 0).await.expect("decision");
    assert_eq!((spent.allowed, spent.remaining), (true, 0));
    assert!(!limiter.check("big", &quota).await.expect("d").allowed);
}

async fn a_refund_restores_exactly_and_never_beyond_the_burst(limiter: &dyn RateLimiter) {
    // Slow enough that Redis' own expiry (at the TAT, on its real clock)
    // never outruns the test.
    let quota: Quota = "10/min,burst=10".parse().expect("quota");
    let spent = limiter.check_n("r", &quota, 8).await.expect("decision");
    assert_eq!(spent.remaining, 2);
    limiter.refund("r", &quota, 3).await.expect("refund");
    let again = limiter.check_n("r", &quota, 5).await.expect("decision");
    assert_eq!((again.allowed, again.remaining), (true, 0));
    assert!(!limiter.check("r", &quota).await.expect("d").allowed);
    // Refunding far more than was spent gives back a full burst, no more.
    limiter.refund("r", &quota, 1_000).await.expect("refund");
    let full = limiter.check_n("r", &quota, 10).await.expect("decision");
    assert_eq!((full.allowed, full.remaining), (true, 0));
    assert!(!limiter.check("r", &quota).await.expect("d").allowed);
    // A refund to a key without state changes nothing.
    limiter.refund("unknown", &quota, 5).await.expect("refund");
    assert!(
        limiter
            .check_n("unknown", &quota, 10)
            .await
            .expect("d")
            .allowed
    );
    assert!(!limiter.check("unknown", &quota).await.expect("d").allowed);
}

async fn budgets_refuse_at_the_limit_and_reset_at_midnight_utc(
    limiter: &dyn RateLimiter,
    clock: &ManualClock,
) {
    clock.set(utc(2026, 1, 31, 23, 0, 0));
    let day = BudgetWindow::Day;
    let d = limiter.reserve("b", day, 100, 60).await.expect("reserve");
    assert_eq!(
        (d.allowed, d.used, d.limit, d.remaining),
        (true, 60, 100, 40)
    );
    assert_eq!(d.window_id, utc(2026, 1, 31, 0, 0, 0).timestamp());
    assert_eq!(d.reset_after, Duration::from_secs(3600));
    let refused = limiter.reserve("b", day, 100, 41).await.expect("reserve");
    assert_eq!(
        (refused.allowed, refused.used, refused.remaining),
        (false, 60, 40)
    );
    let rest = limiter.reserve("b", day, 100, 40).await.expect("reserve");
    assert_eq!((rest.allowed, rest.used, rest.remaining), (true, 100, 0));
    assert!(!limiter.reserve("b", day, 100, 1).await.expect("r").allowed);
    assert!(limiter.reserve("b", day, 100, 0).await.expect("r").allowed);
    // The month's counter is another counter, even at the same key.
    let month = limiter
        .reserve("b", BudgetWindow::Month, 150, 100)
        .await
        .expect("reserve");
    assert_eq!((month.allowed, month.used), (true, 100));
    assert_eq!(month.window_id, utc(2026, 1, 1, 0, 0, 0).timestamp());

    clock.set(utc(2026, 2, 1, 0, 0, 0) - us(1));
    assert!(!limiter.reserve("b", day, 100, 1).await.expect("r").allowed);
    assert!(
        !limiter
            .reserve("b", BudgetWindow::Month, 150, 51)
            .await
            .expect("r")
            .allowed
    );
    clock.advance(us(1));
    let next = limiter.reserve("b", day, 100, 100).await.expect("reserve");
    assert_eq!((next.allowed, next.used), (true, 100));
    assert_eq!(next.window_id, utc(2026, 2, 1, 0, 0, 0).timestamp());
    let february = limiter
        .reserve("b", BudgetWindow::Month, 150, 150)
        .await
        .expect("reserve");
    assert_eq!((february.allowed, february.used), (true, 150));
    assert_eq!(february.reset_after, Duration::from_secs(28 * 86_400));
}

async fn settling_releases_and_charges_the_reservation_window(
    limiter: &dyn RateLimiter,
    clock: &ManualClock,
) {
    clock.set(utc(2026, 3, 10, 23, 0, 0));
    let day = BudgetWindow::Day;
    let reserved = limiter.reserve("s", day, 1000, 800).await.expect("reserve");
    let window = reserved.window_id;
    // Used 300 of the 800 reserved: release 500.
    limiter
        .settle("s", day, window, -500)
        .await
        .expect("settle");
    let d = limiter.reserve("s", day, 1000, 700).await.expect("reserve");
    assert_eq!((d.allowed, d.used), (true, 1000));
    // Used more than reserved: charged even beyond the limit.
    limiter.settle("s", day, window, 200).await.expect("settle");
    let over = limiter.reserve("s", day, 1000, 1).await.expect("reserve");
    assert_eq!((over.allowed, over.used, over.remaining), (false, 1200, 0));
    // Never below 0.
    limiter
        .settle("s", day, window, -5_000)
        .await
        .expect("settle");
    let d = limiter
        .reserve("s", day, 1000, 1000)
        .await
        .expect("reserve");
    assert_eq!((d.allowed, d.used), (true, 1000));

    // A request admitted before midnight settles against its own day, for
    // an hour after that day ends; the new day is not touched.
    clock.set(utc(2026, 3, 11, 0, 30, 0));
    limiter
        .settle("s", day, window, -400)
        .await
        .expect("settle");
    let today = limiter.reserve("s", day, 1000, 0).await.expect("reserve");
    assert_eq!(today.used, 0);
    clock.set(utc(2026, 3, 11, 1, 0, 0));
    limiter
        .settle("s", day, window, -400)
        .await
        .expect("too late");
    clock.set(utc(2026, 3, 10, 23, 30, 0));
    let yesterday = limiter.reserve("s", day, 1000, 0).await.expect("reserve");
    assert_eq!(yesterday.used, 600);
    // Any instant inside the window names it.
    limiter
        .settle("s", day, window + 3_600, -100)
        .await
        .expect("s");
    let named = limiter.reserve("s", day, 1000, 0).await.expect("reserve");
    assert_eq!(named.used, 500);
}

async fn conformance(limiter: &dyn RateLimiter, clock: &ManualClock) {
    weighted_requests_spend_their_cost_and_wait_exactly(limiter, clock).await;
    a_cost_above_the_burst_is_refused_and_cost_zero_is_free(limiter).await;
    a_refund_restores_exactly_and_never_beyond_the_burst(limiter).await;
    budgets_refuse_at_the_limit_and_reset_at_midnight_utc(limiter, clock).await;
    settling_releases_and_charges_the_reservation_window(limiter, clock).await;
}

#[tokio::test]
async fn conformance_in_process() {
    let clock = clock();
    let limiter = LocalLimiter::new(Arc::new(clock.clone()));
    conformance(&limiter, &clock).await;
}

#[tokio::test]
async fn conformance_redis() {
    let server = RedisServer::start();
    let clock = clock();
    let limiter = redis_limiter(settings(&server), &clock).await;
    conformance(&limiter, &clock).await;
}

#[tokio::test]
async fn conformance_failover_while_redis_is_up() {
    let server = RedisServer::start();
    let clock = clock();
    let redis = redis_limiter(settings(&server), &clock).await;
    let limiter = GlobalLimiter::new(
        redis,
        LocalLimiter::new(Arc::new(clock.clone())),
        WhenDown::FailClosed,
    );
    conformance(&limiter, &clock).await;
    assert!(!limiter.is_degraded());
}

// ---- across replicas ----------------------------------------------------

async fn two_replicas(server: &RedisServer, clock: &ManualClock) -> [Arc<RedisLimiter>; 2] {
    let shared = settings(server);
    [
        Arc::new(redis_limiter(shared.clone(), clock).await),
        Arc::new(redis_limiter(shared, clock).await),
    ]
}

#[tokio::test]
async fn two_replicas_share_one_budget_and_one_token_quota() {
    let server = RedisServer::start();
    let clock = clock();
    let [a, b] = two_replicas(&server, &clock).await;
    let day = BudgetWindow::Day;
    let reserved = a.reserve("key-1", day, 100, 60).await.expect("reserve");
    assert!(!b.reserve("key-1", day, 100, 41).await.expect("r").allowed);
    // Settled on one replica, seen by the other.
    a.settle("key-1", day, reserved.window_id, -30)
        .await
        .expect("settle");
    let d = b.reserve("key-1", day, 100, 70).await.expect("reserve");
    assert_eq!((d.allowed, d.used), (true, 100));

    let quota: Quota = "1000/min".parse().expect("quota");
    assert!(a.check_n("key-1", &quota, 600).await.expect("d").allowed);
    let refused = b.check_n("key-1", &quota, 500).await.expect("decision");
    assert_eq!(
        (refused.allowed, refused.retry_after_us),
        (false, 6_000_000)
    );
    a.refund("key-1", &quota, 100).await.expect("refund");
    assert!(b.check_n("key-1", &quota, 500).await.expect("d").allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_on_two_replicas_never_overspend() {
    let server = RedisServer::start();
    let clock = clock();
    let replicas = two_replicas(&server, &clock).await;
    let quota: Quota = "1000/min".parse().expect("quota");
    // 2 x 50 requests of 15 tokens at one instant, against 1000 tokens a
    // day and 1000 tokens a minute: exactly 66 of each fit (990 tokens).
    let mut attempts = tokio::task::JoinSet::new();
    for replica in &replicas {
        for _ in 0..50 {
            let replica = replica.clone();
            attempts.spawn(async move {
                let budget = replica.reserve("k", BudgetWindow::Day, 1000, 15).await;
                let rate = replica.check_n("k", &quota, 15).await;
                (
                    u64::from(budget.expect("reserve").allowed),
                    u64::from(rate.expect("decision").allowed),
                )
            });
        }
    }
    let (mut budget, mut rate) = (0, 0);
    while let Some(outcome) = attempts.join_next().await {
        let (b, r) = outcome.expect("join");
        budget += b;
        rate += r;
    }
    assert_eq!((budget, rate), (66, 66));
    let d = replicas[0].reserve("k", BudgetWindow::Day, 1000, 0).await;
    assert_eq!(d.expect("reserve").used, 990);
}
