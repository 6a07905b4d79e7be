//! Both adapters against one conformance suite, then what only the Redis
//! adapter can do: one limit across replicas, and surviving Redis' loss.
//! Time is a manual clock shared by every limiter in a test; no test waits
//! for a window to pass.

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use kit::ManualClock;
use ratelimit::{
    GlobalLimiter, LimiterError, LocalLimiter, Quota, RateLimiter, RedisLimiter, RedisSettings,
    WhenDown,
};
use std::sync::atomic::{AtomicU64, Ordering};
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

static NEXT_PREFIX: AtomicU64 = AtomicU64::new(0);

fn settings(server: &RedisServer) -> RedisSettings {
    let mut settings = RedisSettings::new(server.url());
    settings.key_prefix = format!(
        "test{}:{}:",
        std::process::id(),
        NEXT_PREFIX.fetch_add(1, Ordering::Relaxed)
    );
    settings.reconnect_backoff = Duration::from_millis(20);
    // Generous: a loaded CI machine must not turn a slow answer into a
    // spurious outage in the conformance tests.
    settings.decision_timeout = Duration::from_secs(2);
    settings
}

async fn redis_limiter(server: &RedisServer, clock: &ManualClock) -> RedisLimiter {
    RedisLimiter::connect(settings(server), Arc::new(clock.clone()))
        .await
        .expect("connect")
}

async fn allowed(limiter: &dyn RateLimiter, key: &str, quota: &Quota, n: u32) -> u32 {
    let mut count = 0;
    for _ in 0..n {
        let decision = limiter.check(key, quota).await.expect("decision");
        count += u32::from(decision.allowed);
    }
    count
}

// ---- the conformance suite, run once per adapter ----------------------

async fn a_fresh_key_gets_its_burst_then_waits_exactly_retry_after(
    limiter: &dyn RateLimiter,
    clock: &ManualClock,
) {
    let quota: Quota = "10/s,burst=3".parse().expect("quota");
    let first = limiter.check("a", &quota).await.expect("decision");
    assert!(first.allowed);
    assert_eq!(first.remaining, 2);
    assert_eq!(allowed(limiter, "a", &quota, 2).await, 2);
    let refused = limiter.check("a", &quota).await.expect("decision");
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.retry_after_us, 100_000);
    assert_eq!(refused.reset_us, 300_000);
    clock.advance(ChronoDuration::microseconds(99_999));
    assert!(!limiter.check("a", &quota).await.expect("decision").allowed);
    clock.advance(ChronoDuration::microseconds(1));
    assert!(limiter.check("a", &quota).await.expect("decision").allowed);
}

async fn keys_are_independent(limiter: &dyn RateLimiter) {
    let quota: Quota = "1/min,burst=1".parse().expect("quota");
    assert_eq!(allowed(limiter, "k1", &quota, 3).await, 1);
    assert_eq!(allowed(limiter, "k2", &quota, 3).await, 1);
}

async fn over_a_window_the_total_is_burst_plus_rate_times_time(
    limiter: &dyn RateLimiter,
    clock: &ManualClock,
) {
    let quota: Quota = "50/s,burst=10".parse().expect("quota");
    let mut total = 0;
    // 2 s in 10 ms steps, three attempts a step (more than the rate).
    for _ in 0..200 {
        total += allowed(limiter, "w", &quota, 3).await;
        clock.advance(ChronoDuration::milliseconds(10));
    }
    // 10 at once, then one per 20 ms over the remaining 1.99 s.
    assert_eq!(total, 10 + 99);
}

async fn conformance(limiter: &dyn RateLimiter, clock: &ManualClock) {
    a_fresh_key_gets_its_burst_then_waits_exactly_retry_after(limiter, clock).await;
    keys_are_independent(limiter).await;
    over_a_window_the_total_is_burst_plus_rate_times_time(limiter, clock).await;
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
    let limiter = redis_limiter(&server, &clock).await;
    conformance(&limiter, &clock).await;
}

// ---- across replicas ----------------------------------------------------

/// Three replicas, each hit by 8 concurrent clients every 10 ms of a 5 s
/// window (2,400 attempts a second against a 100/s limit). Returns the
/// requests allowed in total.
async fn three_replicas(replicas: Vec<Arc<dyn RateLimiter>>, clock: &ManualClock) -> u64 {
    let quota: Quota = "100/s,burst=100".parse().expect("quota");
    let mut total = 0;
    for _ in 0..500 {
        let mut attempts = tokio::task::JoinSet::new();
        for replica in &replicas {
            for _ in 0..8 {
                let replica = replica.clone();
                attempts.spawn(async move {
                    let decision = replica.check("client-1", &quota).await.expect("decision");
                    u64::from(decision.allowed)
                });
            }
        }
        while let Some(allowed) = attempts.join_next().await {
            total += allowed.expect("join");
        }
        clock.advance(ChronoDuration::milliseconds(10));
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_redis_hold_one_global_limit() {
    let server = RedisServer::start();
    let clock = clock();
    // Three replicas: three connections, one key space.
    let shared = settings(&server);
    let mut replicas: Vec<Arc<dyn RateLimiter>> = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(
            RedisLimiter::connect(shared.clone(), Arc::new(clock.clone()))
                .await
                .expect("connect"),
        ));
    }
    let global = three_replicas(replicas, &clock).await;
    // 100 at once, then 100/s for the remaining 4.99 s.
    let limit = 100 + 499;
    println!(
        "global limit {limit} over 5 s; three replicas on one Redis allowed {global} ({:+.2}%)",
        (global as f64 / limit as f64 - 1.0) * 100.0
    );
    assert!(
        (global as f64 - limit as f64).abs() <= limit as f64 * 0.02,
        "allowed {global}, limit {limit}"
    );

    let clock = self::clock();
    let local: Vec<Arc<dyn RateLimiter>> = (0..3)
        .map(|_| Arc::new(LocalLimiter::new(Arc::new(clock.clone()))) as Arc<dyn RateLimiter>)
        .collect();
    let per_replica = three_replicas(local, &clock).await;
    println!(
        "in-process limiters on three replicas allowed {per_replica} ({:.2}x the limit)",
        per_replica as f64 / limit as f64
    );
    assert_eq!(
        per_replica,
        3 * limit,
        "each replica enforces the quota alone"
    );
}

#[tokio::test]
async fn redis_keys_expire_on_their_own() {
    let server = RedisServer::start();
    let clock = clock();
    let settings = settings(&server);
    let prefix = settings.key_prefix.clone();
    let limiter = RedisLimiter::connect(settings, Arc::new(clock.clone()))
        .await
        .expect("connect");
    let quota: Quota = "10/s,burst=5".parse().expect("quota");
    limiter.check("ttl", &quota).await.expect("decision");
    let client = redis::Client::open(server.url()).expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}{{ttl}}"))
        .query_async(&mut connection)
        .await
        .expect("pttl");
    // Expires at the TAT: one emission interval (100 ms) from now.
    assert!((1..=100).contains(&ttl), "pttl {ttl}");
}

// ---- losing Redis -------------------------------------------------------

async fn global(server: &RedisServer, clock: &ManualClock, when_down: WhenDown) -> GlobalLimiter {
    let redis = redis_limiter(server, clock).await;
    let local = LocalLimiter::new(Arc::new(clock.clone()));
    GlobalLimiter::new(redis, local, when_down)
}

/// Polls `condition` until it holds. Each poll makes one decision and
/// moves the shared clock on 100 ms: reconnecting is driven by decisions
/// once the backoff has passed on the limiter's clock.
async fn until(
    limiter: &GlobalLimiter,
    clock: &ManualClock,
    quota: &Quota,
    condition: impl Fn(&GlobalLimiter) -> bool,
) {
    testkit::eventually("the condition", Duration::from_secs(30), async || {
        if condition(limiter) {
            return Some(());
        }
        limiter
            .check("poll", quota)
            .await
            .expect("fail open never errs");
        clock.advance(ChronoDuration::milliseconds(100));
        None
    })
    .await;
}

#[tokio::test]
async fn fail_open_keeps_deciding_while_redis_is_down_and_recovers() {
    let server = RedisServer::start();
    let clock = clock();
    let limiter = global(&server, &clock, WhenDown::FailOpen).await;
    let quota: Quota = "100/s,burst=5".parse().expect("quota");
    assert_eq!(allowed(&limiter, "c", &quota, 10).await, 5);
    assert!(!limiter.is_degraded());

    server.stop();
    // Not one request fails: decisions move to this replica's limiter,
    // which still limits (its own burst of 5 for the key).
    assert_eq!(allowed(&limiter, "c2", &quota, 50).await, 5);
    assert!(limiter.is_degraded());

    server.start_again().expect("restart");
    until(&limiter, &clock, &quota, |l| !l.is_degraded()).await;
    // Global again: the key's state in the new (empty) Redis starts fresh.
    clock.advance(ChronoDuration::seconds(1));
    assert_eq!(allowed(&limiter, "c3", &quota, 10).await, 5);
}

#[tokio::test]
async fn fail_closed_refuses_while_redis_is_down() {
    let server = RedisServer::start();
    let clock = clock();
    let limiter = global(&server, &clock, WhenDown::FailClosed).await;
    let quota: Quota = "100/s".parse().expect("quota");
    assert!(limiter.check("c", &quota).await.expect("up").allowed);
    server.stop();
    let mut errors = 0;
    for _ in 0..5 {
        match limiter.check("c", &quota).await {
            Err(LimiterError::Unavailable(_) | LimiterError::Timeout) => errors += 1,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(errors, 5);
    assert!(limiter.is_degraded());
}

#[tokio::test]
async fn a_limiter_started_without_redis_connects_when_it_appears() {
    let server = RedisServer::start();
    server.stop();
    let clock = clock();
    let limiter = global(&server, &clock, WhenDown::FailOpen).await;
    // Started down: the first decision is local, not a connect attempt.
    let quota: Quota = "100/s".parse().expect("quota");
    assert!(limiter.check("c", &quota).await.expect("fail open").allowed);
    assert!(limiter.is_degraded());
    server.start_again().expect("start");
    until(&limiter, &clock, &quota, |l| !l.is_degraded()).await;
}
