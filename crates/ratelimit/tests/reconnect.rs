//! Reconnection on demand: no task watches Redis. While the limiter is
//! down, decisions fail at once; the first decision after the backoff has
//! passed on the limiter's (manual) clock starts one reconnect attempt in
//! a task, without waiting for it, and each failed attempt doubles the
//! backoff up to 5 s. Attempts are counted as connections a listener
//! received, so no test waits to see that nothing happened; the tests
//! against a silent server run on tokio's paused clock, so the attempt's
//! connect timeout passes at once.

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

/// Waits until no reconnect attempt is under way (on a paused clock, the
/// attempt's timeout passes as soon as nothing else can run).
async fn settled(limiter: &RedisLimiter) {
    testkit::eventually("the attempt to end", Duration::from_secs(30), async || {
        (!limiter.is_reconnecting()).then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
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
        assert!(refused_at_once(&limiter.check("k", &quota()).await));
    }
    clock.advance(ChronoDuration::milliseconds(999));
    assert!(refused_at_once(&limiter.check("k", &quota()).await));
    settled(&limiter).await;
    assert_eq!(redis.attempts(), 0);

    // The backoff has passed: the first decision starts the one attempt,
    // and neither it nor those that arrive meanwhile wait for it.
    clock.advance(ChronoDuration::milliseconds(1));
    let quota = quota();
    let started = tokio::time::Instant::now();
    let (first, second, third) = tokio::join!(
        limiter.check("a", &quota),
        limiter.check("b", &quota),
        limiter.check("c", &quota),
    );
    assert_eq!(
        tokio::time::Instant::now(),
        started,
        "no decision waited on a timer"
    );
    for outcome in [&first, &second, &third] {
        assert!(refused_at_once(outcome), "{outcome:?}");
    }
    assert!(limiter.is_reconnecting());
    settled(&limiter).await;
    assert_eq!(redis.attempts(), 1);
    assert!(!limiter.is_up());

    // Each failed attempt doubles the backoff: 2 s, 4 s, then 5 s at most.
    for backoff_ms in [2_000, 4_000, 5_000, 5_000] {
        clock.advance(ChronoDuration::milliseconds(backoff_ms - 1));
        assert!(refused_at_once(&limiter.check("k", &quota).await));
        settled(&limiter).await;
        assert_eq!(redis.attempts(), 0, "before {backoff_ms} ms");
        clock.advance(ChronoDuration::milliseconds(1));
        assert!(refused_at_once(&limiter.check("k", &quota).await));
        settled(&limiter).await;
        assert_eq!(redis.attempts(), 1, "at {backoff_ms} ms");
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_limiter_ends_its_reconnect_attempt() {
    let redis = Silent::start();
    let mut settings = redis.settings();
    // The attempt would otherwise hang on the silent server for a minute.
    settings.decision_timeout = Duration::from_secs(60);
    let clock = clock();
    let limiter = RedisLimiter::connect(settings, Arc::new(clock.clone()))
        .await
        .expect("a limiter, down");
    // The attempt at start has timed out; the next one starts now.
    clock.advance(ChronoDuration::seconds(1));
    assert!(refused_at_once(&limiter.check("k", &quota()).await));
    assert!(limiter.is_reconnecting());
    let mut accepted = Vec::new();
    let attempt = testkit::eventually(
        "the attempt's connection",
        Duration::from_secs(30),
        async || {
            while let Ok((stream, _)) = redis.listener.accept() {
                accepted.push(stream);
            }
            (accepted.len() == 2).then(|| accepted.pop())
        },
    )
    .await
    .expect("a connection");
    attempt.set_nonblocking(true).expect("non-blocking");
    let mut attempt = tokio::net::TcpStream::from_std(attempt).expect("tokio stream");

    drop(limiter);
    // The attempt's task is aborted, which closes its connection: the
    // server reads end of stream well before the attempt's own 60 s bound.
    // The wait runs on real time: on the paused clock a runtime with
    // nothing ready jumps straight to its next timer, so the 30 s bound
    // (and the attempt's own 60 s one) could pass before the kernel
    // delivers the close.
    tokio::time::resume();
    let eof = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 256];
        while attempt.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(eof.is_ok(), "the attempt's connection outlived the limiter");
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
    assert!(refused_at_once(&limiter.check("k", &quota).await));
    assert!(!limiter.is_up() && !limiter.is_reconnecting());
    clock.advance(ChronoDuration::seconds(1));
    // That decision starts the attempt and is refused; once the attempt
    // has succeeded, Redis decides again.
    assert!(refused_at_once(&limiter.check("k", &quota).await));
    settled(&limiter).await;
    assert!(limiter.is_up());
    let decision = limiter.check("k", &quota).await.expect("decided by Redis");
    // The new Redis started empty: a fresh burst.
    assert_eq!((decision.allowed, decision.remaining), (true, 1));
}
