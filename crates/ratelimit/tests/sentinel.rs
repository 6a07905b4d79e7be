//! The Redis adapter behind Sentinel (master, replica, 3 sentinels): it
//! follows the master through a failover, whether the old master dies
//! (SIGKILL) or is demoted alive (`SENTINEL FAILOVER`), and loads its
//! scripts again when a server lost them (`NOSCRIPT`). Time is a manual
//! clock; the servers are real.

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use kit::ManualClock;
use ratelimit::{
    GlobalLimiter, LimiterError, LocalLimiter, Quota, RateLimiter, RedisLimiter, RedisSettings,
    WhenDown,
};
use std::sync::Arc;
use std::time::Duration;
use testkit::redis::{cli, RedisSentinels, MASTER_NAME};

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
}

async fn global(url: String, clock: &ManualClock, when_down: WhenDown) -> GlobalLimiter {
    let mut settings = RedisSettings::new(url);
    settings.reconnect_backoff = Duration::from_millis(20);
    settings.decision_timeout = Duration::from_millis(500);
    let redis = RedisLimiter::connect(settings, Arc::new(clock.clone()))
        .await
        .expect("connect");
    GlobalLimiter::new(redis, LocalLimiter::new(Arc::new(clock.clone())), when_down)
}

async fn allowed(limiter: &dyn RateLimiter, key: &str, quota: &Quota, n: u32) -> u32 {
    let mut count = 0;
    for _ in 0..n {
        let decision = limiter.check(key, quota).await.expect("decision");
        count += u32::from(decision.allowed);
    }
    count
}

/// Decides until the limiter is global again (each poll moves the clock
/// on 100 ms: reconnects are driven by decisions after the backoff).
async fn until_global(limiter: &GlobalLimiter, clock: &ManualClock, quota: &Quota) {
    testkit::eventually(
        "decisions from Redis again",
        Duration::from_secs(30),
        async || {
            limiter
                .check("poll", quota)
                .await
                .expect("fail open never errs");
            clock.advance(ChronoDuration::milliseconds(100));
            (!limiter.is_degraded()).then_some(())
        },
    )
    .await;
}

/// Keys of `prefix` on the server at `port`.
fn keys(port: u16) -> String {
    cli(port, &["keys", "reliable:rl:*"]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_new_master_after_the_master_is_killed() {
    let sentinels = RedisSentinels::start();
    let clock = clock();
    let limiter = global(sentinels.url(), &clock, WhenDown::FailOpen).await;
    let quota: Quota = "1/min,burst=5".parse().unwrap();
    assert_eq!(allowed(&limiter, "k", &quota, 3).await, 3);
    cli(sentinels.port(0), &["wait", "1", "2000"]).unwrap();
    // The replica's script cache is empty: its first decisions as a
    // master would be NOSCRIPT if the scripts were not loaded again.
    cli(sentinels.port(1), &["script", "flush"]).unwrap();

    sentinels.kill(0);
    // Fail open while no master answers: no decision errs.
    testkit::eventually(
        "the limiter to fail open",
        Duration::from_secs(10),
        async || {
            limiter
                .check("k", &quota)
                .await
                .expect("fail open never errs");
            limiter.is_degraded().then_some(())
        },
    )
    .await;
    let sentinels = tokio::task::spawn_blocking(move || {
        assert_eq!(sentinels.wait_failover(0).unwrap(), 1);
        sentinels
    })
    .await
    .unwrap();
    until_global(&limiter, &clock, &quota).await;

    // On the new master, with the state replicated before the kill.
    clock.set(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(allowed(&limiter, "k", &quota, 5).await, 2);
    assert!(keys(sentinels.port(1)).contains("reliable:rl:{k}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_master_demoted_alive_by_a_manual_failover() {
    let sentinels = RedisSentinels::start();
    let clock = clock();
    let limiter = global(sentinels.url(), &clock, WhenDown::FailOpen).await;
    let quota: Quota = "1/min,burst=100".parse().unwrap();
    assert_eq!(allowed(&limiter, "m", &quota, 1).await, 1);
    cli(
        sentinels.sentinel_ports()[0],
        &["sentinel", "failover", MASTER_NAME],
    )
    .unwrap();
    let sentinels = tokio::task::spawn_blocking(move || {
        assert_eq!(sentinels.wait_failover(0).unwrap(), 1);
        sentinels
    })
    .await
    .unwrap();
    // The old master is alive and now a replica: writes there answer
    // READONLY (or its clients are dropped). Either way the adapter asks
    // the sentinels again and lands on the new master.
    testkit::eventually(
        "a decision on the new master",
        Duration::from_secs(30),
        async || {
            limiter
                .check("after", &quota)
                .await
                .expect("fail open never errs");
            clock.advance(ChronoDuration::milliseconds(100));
            keys(sentinels.port(1))
                .contains("reliable:rl:{after}")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn noscript_on_the_live_connection_is_handled() {
    let sentinels = RedisSentinels::start();
    let clock = clock();
    let limiter = global(sentinels.url(), &clock, WhenDown::FailClosed).await;
    let quota: Quota = "1/min,burst=5".parse().unwrap();
    assert_eq!(allowed(&limiter, "s", &quota, 2).await, 2);
    cli(sentinels.port(0), &["script", "flush"]).unwrap();
    // Failing closed, any error would surface here.
    assert_eq!(allowed(&limiter, "s", &quota, 5).await, 3);
    assert!(!limiter.is_degraded());
}

#[tokio::test]
async fn a_standalone_url_at_the_old_master_does_not_follow() {
    // The mechanism off: without Sentinel, a killed master stays gone.
    let sentinels = RedisSentinels::start();
    let clock = clock();
    let url = format!("redis://127.0.0.1:{}/", sentinels.port(0));
    let limiter = global(url, &clock, WhenDown::FailClosed).await;
    let quota: Quota = "1/min,burst=5".parse().unwrap();
    assert!(limiter.check("x", &quota).await.unwrap().allowed);
    sentinels.kill(0);
    let sentinels = tokio::task::spawn_blocking(move || {
        sentinels.wait_failover(0).unwrap();
        sentinels
    })
    .await
    .unwrap();
    for _ in 0..20 {
        clock.advance(ChronoDuration::seconds(10));
        assert!(matches!(
            limiter.check("x", &quota).await,
            Err(LimiterError::Unavailable(_) | LimiterError::Timeout)
        ));
    }
    drop(sentinels);
}
